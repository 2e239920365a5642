// Hostile and damaged inputs to the readers and writers of engine/io and the run checkpoint:
// each case is one way a file downloaded from a stranger (or a disk that filled up) used to
// crash mq, write outside its output directory or be silently accepted. Every one must now be a
// single mq::Error naming the file (or key) and what is wrong.
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/io/atomic_dir.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "engine/io/npy.h"
#include "engine/io/pth.h"
#include "engine/io/pth_pickle.h"
#include "engine/io/zip.h"
#include "meta/run/run_checkpoint.h"
#include "meta/trainers.h"
#include "models/resnet_cifar.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("mq_test_hostile_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream out(p, std::ios::binary);
  out << b;
  REQUIRE(out);
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// A .npy file from its header dict and data bytes (version 1.0, padded as numpy pads).
std::string npy(const std::string& dict, const std::string& data = "") {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += char(h.size() & 0xff);
  out += char(h.size() >> 8);
  return out + h + data;
}

std::string npy_f4(const std::string& shape, const std::string& data = "") {
  return npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", data);
}

// ---- a minimal writer of PyTorch zip checkpoints, for keys and sizes no real file has ----
uint32_t crc(const std::string& s) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}
void put(std::string& o, uint64_t v, int n) {
  for (int k = 0; k < n; ++k) o += char((v >> (8 * k)) & 0xff);
}

struct ZipItem {
  std::string name, data;  // data as stored (deflated when method 8)
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t size = 0;  // declared uncompressed size
};

ZipItem stored(const std::string& name, const std::string& data) {
  return {name, data, 0, crc(data), data.size()};
}

std::string raw_deflate(const std::string& data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zip(const std::vector<ZipItem>& items) {
  std::string out, central;
  for (const ZipItem& e : items) {
    const size_t offset = out.size();
    put(out, 0x04034b50, 4);
    put(out, 20, 2), put(out, 0, 2), put(out, e.method, 2), put(out, 0, 4);
    put(out, e.crc, 4), put(out, e.data.size(), 4), put(out, e.size, 4);
    put(out, e.name.size(), 2), put(out, 0, 2);
    out += e.name + e.data;
    put(central, 0x02014b50, 4);
    put(central, 20, 2), put(central, 20, 2), put(central, 0, 2), put(central, e.method, 2);
    put(central, 0, 4), put(central, e.crc, 4), put(central, e.data.size(), 4);
    put(central, e.size, 4), put(central, e.name.size(), 2), put(central, 0, 2);
    put(central, 0, 2), put(central, 0, 2), put(central, 0, 2), put(central, 0, 4);
    put(central, offset, 4);
    central += e.name;
  }
  const size_t cd_offset = out.size();
  out += central;
  put(out, 0x06054b50, 4);
  put(out, 0, 2), put(out, 0, 2), put(out, items.size(), 2), put(out, items.size(), 2);
  put(out, central.size(), 4), put(out, cd_offset, 4), put(out, 0, 2);
  return out;
}

// Pickle pieces (protocol 2) of a state dict whose tensors are f32 views of storages "0", "1"...
std::string pstr(const std::string& s) {
  std::string o = "X";
  put(o, s.size(), 4);
  return o + s;
}
std::string pint(uint32_t v) {
  std::string o = "J";
  put(o, v, 4);
  return o;
}
std::string ptuple(const std::vector<int64_t>& v) {
  std::string o = "(";
  for (int64_t x : v) o += pint(static_cast<uint32_t>(x));
  return o + "t";
}

struct FakeTensor {
  std::string key, storage;
  std::vector<int64_t> size, stride;
};

std::string state_dict_pickle(const std::vector<FakeTensor>& tensors) {
  std::string p = "\x80\x02}(";
  for (const FakeTensor& t : tensors) {
    p += pstr(t.key);
    p += "ctorch._utils\n_rebuild_tensor_v2\n(";
    p += '(';  // the persistent id
    p += pstr("storage") + "ctorch\nFloatStorage\n" + pstr(t.storage) + pstr("cpu") + pint(1);
    p += "tQ";
    p += pint(0) + ptuple(t.size) + ptuple(t.stride) + "\x89";
    p += "ccollections\nOrderedDict\n)R";
    p += "tR";
  }
  return p + "u.";
}

// A zip checkpoint: one f32 storage per distinct name in `tensors`, of `floats` elements.
std::string fake_pth(const std::vector<FakeTensor>& tensors, size_t floats = 1) {
  std::vector<ZipItem> items{stored("archive/data.pkl", state_dict_pickle(tensors))};
  std::set<std::string> storages;
  for (const FakeTensor& t : tensors) storages.insert(t.storage);
  for (const std::string& s : storages)
    items.push_back(stored("archive/data/" + s, std::string(4 * floats, '\0')));
  items.push_back(stored("archive/byteorder", "little"));
  return zip(items);
}

// The message of the mq::Error that `f` throws; any other exception fails the test.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no mq::Error was thrown");
  return "";
}

}  // namespace

// ---- .npy --------------------------------------------------------------------------------

TEST_CASE("npy: a shape extent too long for int64 is an error, not std::out_of_range",
          "[io_hostile]") {
  CHECK_THAT(error_of([&] { decode_npy(npy_f4("(99999999999999999999999,)"), "big.npy"); }),
             Catch::Contains("big.npy") && Catch::Contains("does not fit"));
}

TEST_CASE("npy: a shape whose element count overflows int64 is refused before any arithmetic",
          "[io_hostile]") {
  // 2^32 * 2^32 * 4 wraps to 0 in int64 arithmetic: an empty tensor of an absurd shape.
  CHECK_THAT(error_of([&] { decode_npy(npy_f4("(4294967296, 4294967296, 4)"), "wrap.npy"); }),
             Catch::Contains("wrap.npy") && Catch::Contains("element count"));
  // No overflow, but 4 TB announced by a tiny file: refused before allocating.
  CHECK_THAT(error_of([&] { decode_npy(npy_f4("(1000000000000,)", "abcd"), "huge.npy"); }),
             Catch::Contains("huge.npy") && Catch::Contains("truncated data"));
  std::string many = "(";
  for (int i = 0; i < 100; ++i) many += "1, ";
  REQUIRE_THROWS_WITH(decode_npy(npy_f4(many + ")", "abcd"), "rank.npy"),
                      Catch::Contains("dimensions"));
}

TEST_CASE("npy: truncated data names the file and the sizes", "[io_hostile]") {
  CHECK_THAT(error_of([&] { decode_npy(npy_f4("(3,)", std::string(11, 'x')), "short.npy"); }),
             Catch::Contains("short.npy") && Catch::Contains("needs 12 bytes, file holds 11"));
}

TEST_CASE("npy: a symlink loop in a state directory is an error naming it", "[io_hostile]") {
  const fs::path d = fresh_dir("loop");
  save_npy((d / "a.npy").string(), Tensor::from_vector<float>({1, 2}, {2}));
  fs::create_symlink("b.npy", d / "b.npy");  // b.npy -> b.npy
  CHECK_THAT(error_of([&] { load_npy_dir(d.string()); }),
             Catch::Contains("b.npy") && Catch::Contains("symlink loop"));
  // The directory itself a loop.
  fs::create_symlink("self", d / "self");
  REQUIRE_THROWS_AS(load_npy_dir((d / "self").string()), Error);
  REQUIRE_THROWS_WITH(load_npy((d / "self" / "a.npy").string()), Catch::Contains("self"));
  fs::remove_all(d);
}

TEST_CASE("npy: a directory named like a tensor file is an error, not a missing tensor",
          "[io_hostile]") {
  const fs::path d = fresh_dir("dirfile");
  save_npy((d / "a.npy").string(), Tensor::from_vector<float>({1, 2}, {2}));
  fs::create_directory(d / "b.npy");
  CHECK_THAT(error_of([&] { load_npy_dir(d.string()); }),
             Catch::Contains("b.npy") && Catch::Contains("is a directory"));
  REQUIRE_THROWS_WITH(load_npy((d / "b.npy").string()), Catch::Contains("is a directory"));
  fs::remove_all(d);
}

// ---- .pth and zip --------------------------------------------------------------------------

TEST_CASE("pth: the fake checkpoint writer makes files load_pth reads", "[io_hostile]") {
  TensorMap m = decode_pth(fake_pth({{"w", "0", {2, 3}, {3, 1}}}, 6), "fake.pth");
  REQUIRE(m.size() == 1);
  REQUIRE(m.at("w").shape() == Shape{2, 3});
}

TEST_CASE("pth: state-dict keys that leave the output directory are refused, nothing written",
          "[io_hostile]") {
  const fs::path root = fresh_dir("keys");
  const fs::path out = root / "a" / "b" / "out";
  for (const std::string& key :
       {std::string("../../x"), (root / "abs").string(), std::string(".."), std::string("")}) {
    INFO(key);
    const fs::path file = root / "evil.pth";
    write_bytes(file, fake_pth({{"fine", "0", {1}, {1}}, {key, "0", {1}, {1}}}));
    TensorMap state = load_pth(file.string());
    REQUIRE(state.size() == 2);
    CHECK_THAT(error_of([&] { save_npy_dir(out.string(), state); }),
               Catch::Contains("state-dict key") && Catch::Contains(key));
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(root / "a" / "x.npy"));
    CHECK_FALSE(fs::exists(root / "abs.npy"));
    CHECK(listing(root) == std::set<std::string>{"evil.pth"});
  }
  // The real tool: exit 1, the message names the key, nothing outside.
  write_bytes(root / "evil.pth", fake_pth({{"../../x", "0", {1}, {1}}}));
  const std::string cmd = std::string(MQ_MQTRAIN) + " import-pth " + (root / "evil.pth").string() +
                          " " + out.string() + " > " + (root / "log.txt").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(read_file((root / "log.txt").string(), "log").find("../../x") != std::string::npos);
  CHECK_FALSE(fs::exists(root / "a" / "x.npy"));
  CHECK_FALSE(fs::exists(root / "x.npy"));
  fs::remove_all(root);
}

TEST_CASE("zip: an entry that inflates past its declared size is refused at that size",
          "[io_hostile]") {
  const std::string big(8 << 20, '\0');  // 8 MiB of zeros deflate to ~8 KiB
  ZipItem bomb{"bomb", raw_deflate(big), 8, crc(big.substr(0, 1000)), 1000};
  const std::string archive = zip({bomb});
  ZipReader reader(archive, "bomb.zip");
  CHECK_THAT(error_of([&] { reader.read("bomb"); }),
             Catch::Contains("bomb.zip") && Catch::Contains("inflates to more"));
  // A size that deflate cannot reach from so few bytes is refused before inflating.
  ZipItem liar{"liar", raw_deflate("abc"), 8, crc("abc"), uint64_t{1} << 31};
  const std::string archive2 = zip({liar});
  REQUIRE_THROWS_WITH(ZipReader(archive2, "liar.zip").read("liar"), Catch::Contains("claims"));
  // The honest entry still reads.
  ZipItem fine{"fine", raw_deflate(big), 8, crc(big), big.size()};
  const std::string archive3 = zip({fine});
  REQUIRE(ZipReader(archive3, "fine.zip").read("fine") == big);
}

TEST_CASE("zip: a zip64 locator in a file too short for its record is refused", "[io_hostile]") {
  // A 20-byte locator and a 22-byte end record whose fields say "see zip64": 42 bytes.
  std::string b;
  put(b, 0x07064b50, 4), put(b, 0, 4), put(b, 40, 8), put(b, 1, 4);  // record at 40
  put(b, 0x06054b50, 4), put(b, 0, 4), put(b, 0xffff, 2), put(b, 0xffff, 2);
  put(b, 0xffffffff, 4), put(b, 0xffffffff, 4), put(b, 0, 2);
  REQUIRE(b.size() == 42);
  REQUIRE_THROWS_WITH(ZipReader(b, "short64.zip"), Catch::Contains("zip64"));
}

TEST_CASE("pth: views that repeat one storage cannot expand a small file without bound",
          "[io_hostile]") {
  // Each (2^25,) stride-0 view of a 1-element storage is 128 MiB of f32; the file is ~1 KB.
  std::vector<FakeTensor> views;
  for (int i = 0; i < 3; ++i) views.push_back({fmt::format("v{}", i), "0", {1 << 25}, {0}});
  CHECK_THAT(error_of([&] { decode_pth(fake_pth(views), "views.pth"); }),
             Catch::Contains("views.pth") && Catch::Contains("overlap"));
}

TEST_CASE("pickle: the stack is bounded", "[io_hostile]") {
  std::string p = "\x80\x02";
  p.append((1 << 20) + 1, 'N');
  p += '.';
  REQUIRE_THROWS_WITH(pickle::unpickle(p, 0, "deep.pkl", nullptr),
                      Catch::Contains("more than") && Catch::Contains("stack"));
}

// ---- checkpoints -------------------------------------------------------------------------

namespace {

nlohmann::json progress_meta() {
  return {{"kind", "mq-training-run"},
          {"identity", {{"seed", 1}}},
          {"progress",
           {{"epochs_done", 1},
            {"iterations", 7},
            {"lr", 0.1},
            {"schedule", {{"best", 0.5}, {"have_best", true}, {"bad", 0}}},
            {"test_acc", {50.0}},
            {"best", 50.0},
            {"finished", false}}}};
}

}  // namespace

TEST_CASE("run checkpoint: a field of the wrong type (valid CRC) names the file and field",
          "[io_hostile]") {
  const fs::path d = fresh_dir("ckpt_types");
  const std::string path = (d / "checkpoint.mqck").string();
  REQUIRE_NOTHROW(save_checkpoint(path, {}, progress_meta()));
  REQUIRE(read_run_progress(path).iterations == 7);

  struct Case {
    nlohmann::json::json_pointer at;
    nlohmann::json value;
    std::string field;
  };
  const Case cases[] = {
      {nlohmann::json::json_pointer("/kind"), 5, "training-run"},
      {nlohmann::json::json_pointer("/progress/epochs_done"), "three", "epochs_done"},
      {nlohmann::json::json_pointer("/progress/iterations"), 1e300, "iterations"},
      {nlohmann::json::json_pointer("/progress/iterations"), -4, "iterations"},
      {nlohmann::json::json_pointer("/progress/lr"), nullptr, "lr"},
      {nlohmann::json::json_pointer("/progress/schedule"), 3, "schedule"},
      {nlohmann::json::json_pointer("/progress/schedule/have_best"), 1, "have_best"},
      {nlohmann::json::json_pointer("/progress/test_acc"), {{"a", 1}}, "test_acc"},
      {nlohmann::json::json_pointer("/progress/test_acc/0"), "x", "test_acc[0]"},
      {nlohmann::json::json_pointer("/progress"), nlohmann::json::array(), "progress"},
  };
  for (const Case& c : cases) {
    nlohmann::json meta = progress_meta();
    meta[c.at] = c.value;
    INFO(meta.dump());
    save_checkpoint(path, {}, meta);  // a valid CRC over the bad metadata
    CHECK_THAT(error_of([&] { read_run_progress(path); }),
               Catch::Contains(path) && Catch::Contains(c.field));
  }
  // Metadata nested without bound is refused while parsing (copies and dumps recurse).
  std::string bytes =
      encode_checkpoint({}, nlohmann::json::parse(std::string(200, '[') + std::string(200, ']')));
  REQUIRE_THROWS_WITH(decode_checkpoint(bytes, "deep.mqck"), Catch::Contains("nested deeper"));
  fs::remove_all(d);
}

TEST_CASE("run checkpoint: one without an identity is refused, not resumed unchecked",
          "[io_hostile]") {
  const fs::path d = fresh_dir("ckpt_identity");
  const std::string path = (d / kRunCheckpointName).string();
  ResNetCifar model(8, 10, 3, 1);
  SteTrainer trainer(model, "SGD", 0.1);
  RunProgress progress;
  progress.lr = 0.1;
  const nlohmann::json identity = {{"seed", 1}, {"model", "resnet8"}};
  save_run_checkpoint(path, model, trainer, progress, identity);
  REQUIRE_NOTHROW(load_run_checkpoint(path, model, trainer, identity));

  Checkpoint ck = load_checkpoint(path);
  ck.meta.erase("identity");
  save_checkpoint(path, ck.tensors, ck.meta);
  CHECK_THAT(error_of([&] { load_run_checkpoint(path, model, trainer, identity); }),
             Catch::Contains(path) && Catch::Contains("identity"));
  ck.meta["identity"] = "resnet8";
  save_checkpoint(path, ck.tensors, ck.meta);
  REQUIRE_THROWS_WITH(load_run_checkpoint(path, model, trainer, identity),
                      Catch::Contains("identity"));
  fs::remove_all(d);
}

// ---- contained, atomic saves ---------------------------------------------------------------

TEST_CASE("save: a failed save into an existing directory leaves the old state whole",
          "[io_hostile]") {
  const fs::path root = fresh_dir("atomic");
  const fs::path d = root / "state";
  const Tensor a = Tensor::from_vector<float>({1, 2}, {2});
  const Tensor b = Tensor::from_vector<float>({3, 4, 5}, {3});
  save_npy_dir(d.string(), {{"a", a}, {"b", b}});
  const std::set<std::string> old_files{"a.npy", "b.npy"};
  REQUIRE(listing(d) == old_files);

  // Written in name order: "a" (new content) first, then a name too long for the file system.
  const std::string too_long(300, 'k');
  REQUIRE_THROWS_AS(save_npy_dir(d.string(), {{"a", b}, {"c", a}, {too_long, a}}), Error);
  CHECK(listing(d) == old_files);
  CHECK(load_npy((d / "a.npy").string()).to_vector<float>() == a.to_vector<float>());
  CHECK(listing(root) == std::set<std::string>{"state"});  // no temporary directory left

  // A refused key: nothing written at all.
  REQUIRE_THROWS_WITH(save_npy_dir(d.string(), {{"a", b}, {"x/y", a}}), Catch::Contains("x/y"));
  CHECK(listing(d) == old_files);

  // A successful save replaces the whole state: no old tensor survives beside the new ones.
  save_npy_dir(d.string(), {{"c", b}});
  CHECK(listing(d) == std::set<std::string>{"c.npy"});
  CHECK(listing(root) == std::set<std::string>{"state"});
  fs::remove_all(root);
}

TEST_CASE("save: a prefixed save keeps the other prefixes' files", "[io_hostile]") {
  const fs::path d = fresh_dir("prefixes");
  const Tensor a = Tensor::from_vector<float>({1, 2}, {2});
  save_npy_dir(d.string(), {{"w", a}, {"old", a}}, "final.");
  save_npy_dir(d.string(), {{"w", a}}, "init.");
  save_npy_dir(d.string(), {{"w", a}}, "final.");
  CHECK(listing(d) == std::set<std::string>{"final.w.npy", "init.w.npy"});
  fs::remove_all(d);
}

TEST_CASE("save: refused onto a file, into a directory of other data, or an unwritable place",
          "[io_hostile]") {
  const fs::path root = fresh_dir("targets");
  const TensorMap state{{"w", Tensor::from_vector<float>({1}, {1})}};
  write_bytes(root / "file", "precious");
  CHECK_THAT(error_of([&] { save_npy_dir((root / "file").string(), state); }),
             Catch::Contains("file") && Catch::Contains("not a directory"));
  CHECK(read_file((root / "file").string(), "test") == "precious");
  REQUIRE_THROWS_WITH(check_directory_target((root / "file").string(), "model state"),
                      Catch::Contains("not a directory"));
  // Under a file: the parent cannot be created.
  REQUIRE_THROWS_WITH(save_npy_dir((root / "file" / "sub").string(), state),
                      Catch::Contains("file/sub"));
  // A directory holding other data is not replaced wholesale.
  fs::create_directories(root / "docs");
  write_bytes(root / "docs" / "notes.txt", "mine");
  REQUIRE_THROWS_WITH(save_npy_dir((root / "docs").string(), state), Catch::Contains("notes.txt"));
  CHECK(listing(root / "docs") == std::set<std::string>{"notes.txt"});
  // An unwritable place (even for root: /proc takes no new directories).
  REQUIRE_THROWS_WITH(save_npy_dir("/proc/mq_no_such_state", state),
                      Catch::Contains("/proc/mq_no_such_state"));
  CHECK(listing(root) == std::set<std::string>{"docs", "file"});
  // Through a symlink: the directory it points to is replaced, the link stays.
  fs::create_directories(root / "real");
  fs::create_directory_symlink("real", root / "link");
  save_npy_dir((root / "link").string(), state);
  CHECK(fs::is_symlink(root / "link"));
  CHECK(listing(root / "real") == std::set<std::string>{"w.npy"});
  fs::remove_all(root);
}
