// CPU global average pool, cross-entropy (stable log-softmax) and argmax accuracy.
#include <cmath>

#include "engine/backend.h"
#include "engine/dispatch.h"

namespace mq::cpu {
namespace {

// Calls f(label_of) where label_of(i) reads labels[i] as int64 for i32 or i64 labels.
template <class F>
decltype(auto) with_labels(const Tensor& labels, F&& f) {
  if (labels.dtype() == DType::i64) {
    const int64_t* p = labels.data<int64_t>();
    return f([p](int64_t i) { return p[i]; });
  }
  MQ_CHECK(labels.dtype() == DType::i32, "labels must be i64 or i32, got {}", labels.describe());
  const int32_t* p = labels.data<int32_t>();
  return f([p](int64_t i) { return int64_t(p[i]); });
}

}  // namespace

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  dispatch_floating(x.dtype(), "global_avg_pool", [&](auto tag) {
    using T = decltype(tag);
    const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T inv = T(1) / T(hw);
#pragma omp parallel for schedule(dynamic, 16) if (planes * hw > 65536)
    for (int64_t i = 0; i < planes; ++i) {
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < hw; ++j) acc += px[i * hw + j];
      py[i] = acc * inv;
    }
  });
}

void global_avg_pool_backward(const Tensor& gy, Tensor& gx) {
  dispatch_floating(gy.dtype(), "global_avg_pool_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t planes = gx.size(0) * gx.size(1), hw = gx.size(2) * gx.size(3);
    const T* pg = gy.data<T>();
    T* px = gx.data<T>();
    const T inv = T(1) / T(hw);
#pragma omp parallel for schedule(dynamic, 16) if (planes * hw > 65536)
    for (int64_t i = 0; i < planes; ++i) std::fill(px + i * hw, px + (i + 1) * hw, pg[i] * inv);
  });
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                           Tensor& probs) {
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = logits.size(0), c = logits.size(1);
    const T* z = logits.data<T>();
    T* pr = probs.data<T>();
    double total = 0;
    with_labels(labels, [&](auto label_of) {
      for (int64_t i = 0; i < n; ++i) {
        const T* zi = z + i * c;
        T* pi = pr + i * c;
        const int64_t y = label_of(i);
        MQ_CHECK(y >= 0 && y < c, "cross_entropy: label {} at index {} is outside [0, {})", y, i,
                 c);
        // Stable: shift by the row max before exponentiating.
        T m = zi[0];
        for (int64_t j = 1; j < c; ++j) m = std::max(m, zi[j]);
        double s = 0;
        for (int64_t j = 0; j < c; ++j) {
          pi[j] = std::exp(zi[j] - m);
          s += pi[j];
        }
        const T inv = T(1.0 / s);
        for (int64_t j = 0; j < c; ++j) pi[j] *= inv;
        total += std::log(s) + double(m) - double(zi[y]);
      }
    });
    *loss.data<T>() = T(total / double(n));
  });
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gloss,
                            Tensor& glogits) {
  dispatch_floating(probs.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = probs.size(0), c = probs.size(1);
    const T* pr = probs.data<T>();
    T* g = glogits.data<T>();
    const T scale = T(gloss.item() / double(n));
    with_labels(labels, [&](auto label_of) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < c; ++j) g[i * c + j] = pr[i * c + j] * scale;
        g[i * c + label_of(i)] -= scale;
      }
    });
  });
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  return dispatch_floating(logits.dtype(), "count_correct", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const int64_t n = logits.size(0), c = logits.size(1);
    const T* z = logits.data<T>();
    return with_labels(labels, [&](auto label_of) {
      int64_t correct = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t best = 0;  // first maximum wins, as torch.argmax
        for (int64_t j = 1; j < c; ++j)
          if (z[i * c + j] > z[i * c + best]) best = j;
        correct += best == label_of(i);
      }
      return correct;
    });
  });
}

}  // namespace mq::cpu
