// libFuzzer target: the strict pickle reader (engine/io/pth_pickle.h) on arbitrary bytes, with a
// persistent-load hook that turns any tuple into a storage (as the .pth loader does for
// well-formed ids) so that tensor rebuilding is reached.
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/io/pth_pickle.h"
#include "kernels/base/error.h"

using namespace mq::pickle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const PersistentLoad load = [](const Ref& pid, size_t) -> Ref {
    if (pid->kind != Kind::tuple) mq::fail("persistent id is not a tuple");
    Ref s = make(Kind::storage);
    s->storage.type = "Float";
    s->storage.key = std::to_string(pid->items.size());
    return s;
  };
  try {
    size_t start = 0;
    // Like a legacy .pth: several pickles one after the other.
    for (int k = 0; k < 4 && start < bytes.size(); ++k) {
      Result r = unpickle(bytes, start, "fuzz.pkl", load);
      (void)describe(r.value);
      if (r.end <= start || r.end > bytes.size()) __builtin_trap();
      start = r.end;
    }
  } catch (const mq::Error&) {
  }
  return 0;
}
