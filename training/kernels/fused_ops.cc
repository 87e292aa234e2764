// Fused CPU kernels for the element-wise work of a Transformer training step.
//
// TensorFlow without XLA runs every element-wise op as its own pass over memory: google's
// tanh GELU is 8 ops forward and about 15 backward, dropout 4 forward and 2 backward, a
// layer norm about 9 and 15. On BERT-Base's [4096, 3072] feed-forward activations each pass
// reads and writes 50 MB, so those chains cost more than the matmuls' bias adds. Each op
// here is one pass: it reads its inputs once, computes in float registers (Eigen's
// vectorised tanh) and writes its outputs once, sharded over the intra-op thread pool.
//
//   TfzooGelu(x) -> y                      0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   TfzooGeluGrad(dy, x) -> dx             dy * dGELU/dx, tanh recomputed from x
//   TfzooDropout(x) -> y, mask             y = x / (1 - rate) where kept, else 0; mask uint8
//   TfzooDropoutGrad(dy, mask) -> dx       dy / (1 - rate) where kept, else 0
//   TfzooAttentionSoftmax(scores, adder) -> dropped, probs, mask
//                                          softmax(scores * scale + adder), then dropout
//   TfzooAttentionSoftmaxGrad(dy, probs, mask) -> dscores
//   TfzooLayerNorm(x, gamma, beta) -> y, mean, rstd          over the last axis, float
//   TfzooLayerNormGrad(dy, x, gamma, mean, rstd) -> dx, dgamma, dbeta
//
// Every op takes float, bfloat16 and half values and computes in float (the layer norm's
// scale, shift and statistics are float), so a bf16 model normalises in fp32 without
// casting its activations to fp32 and back. Dropout draws one 32-bit Philox number per
// element from TensorFlow's stateful generator (attrs seed / seed2, as RandomUniform): an
// element is kept when its number is at least rate * 2^32. Reductions (the layer norm's
// dgamma / dbeta) sum fixed row chunks in a fixed order, so results do not depend on the
// number of threads. training/fused_ops.py loads this library and registers the gradients.

#define EIGEN_USE_THREADS  // Eigen::ThreadPoolDevice, the intra-op thread pool

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/guarded_philox_random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tfzoo {
namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace shape_inference = tensorflow::shape_inference;

using FloatArray = Eigen::Array<float, Eigen::Dynamic, 1>;
template <typename T>
using ConstMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Map = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

constexpr int64_t kBlock = 8192;  // elements per shard: a multiple of Philox's 4 outputs
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// Runs fn(first, last) over [0, units) on the intra-op thread pool; a unit costs about
// `cycles` and moves `bytes` (Eigen's cost model decides how many shards).
template <typename Fn>
void Shard(OpKernelContext* ctx, int64_t units, double bytes, double cycles, const Fn& fn) {
  ctx->eigen_cpu_device().parallelFor(
      units, Eigen::TensorOpCost(bytes, 0.0, cycles),
      [&fn](Eigen::Index first, Eigen::Index last) { fn(first, last); });
}

// Runs fn(start, length) over [0, n) in blocks of kBlock elements.
template <typename Fn>
void ForEachBlock(OpKernelContext* ctx, int64_t n, int64_t cost_per_element, const Fn& fn) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  Shard(ctx, blocks, 8.0 * kBlock, static_cast<double>(kBlock * cost_per_element),
        [&](int64_t first, int64_t last) {
          for (int64_t b = first; b < last; ++b) {
            const int64_t start = b * kBlock;
            fn(start, std::min(kBlock, n - start));
          }
        });
}

// The float values of p[0, n): p itself for float, else a converted copy in `buffer`.
template <typename T>
ConstMap<float> AsFloat(const T* p, int64_t n, FloatArray* buffer) {
  if constexpr (std::is_same_v<T, float>) {
    return ConstMap<float>(p, n);
  } else {
    *buffer = ConstMap<T>(p, n).template cast<float>();
    return ConstMap<float>(buffer->data(), n);
  }
}

template <typename T>
void Store(const FloatArray& values, T* out) {
  Map<T>(out, values.size()) = values.template cast<T>();
}

absl::Status SameShape(const char* op, const Tensor& dy, const char* name, const Tensor& t) {
  if (dy.shape() == t.shape()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(op, ": dy ", dy.shape().DebugString(), " and ",
                                                 name, " ", t.shape().DebugString(), " differ"));
}

// ------------------------------------------------------------------------------ GELU

template <typename T>
class GeluOp : public OpKernel {
 public:
  explicit GeluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &y));
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    ForEachBlock(ctx, x.NumElements(), 20, [&](int64_t start, int64_t n) {
      FloatArray buffer;
      const auto v = AsFloat(in + start, n, &buffer);
      FloatArray result = 0.5f * v * (1.0f + (kSqrt2OverPi * (v + kGeluCubic * v.cube())).tanh());
      Store(result, out + start);
    });
  }
};

template <typename T>
class GeluGradOp : public OpKernel {
 public:
  explicit GeluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES_OK(ctx, SameShape("TfzooGeluGrad", dy, "x", x));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &dx));
    const T* grad = dy.flat<T>().data();
    const T* in = x.flat<T>().data();
    T* out = dx->flat<T>().data();
    ForEachBlock(ctx, x.NumElements(), 30, [&](int64_t start, int64_t n) {
      FloatArray grad_buffer, x_buffer;
      const auto g = AsFloat(grad + start, n, &grad_buffer);
      const auto v = AsFloat(in + start, n, &x_buffer);
      const FloatArray square = v.square();
      const FloatArray t = (kSqrt2OverPi * v * (1.0f + kGeluCubic * square)).tanh();
      FloatArray result =
          g * (0.5f * (1.0f + t) + (0.5f * kSqrt2OverPi) * v * (1.0f - t.square()) *
                                       (1.0f + 3.0f * kGeluCubic * square));
      Store(result, out + start);
    });
  }
};

// --------------------------------------------------------------------------- dropout

absl::Status ReadRate(OpKernelConstruction* ctx, float* rate) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("rate", rate));
  if (!(*rate >= 0.0f && *rate < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout rate must be in [0, 1), got ", *rate));
  }
  return absl::OkStatus();
}

// Philox4x32-10 (Salmon et al. 2011) with `base`'s key: fills out[0, 4 * samples) with
// the samples first_sample, first_sample + 1, ... of base's stream (samples: a multiple of
// 8), eight counters at a time in AVX2 registers (TensorFlow's PhiloxRandom computes one
// counter at a time). Sample s of a group of 8 puts its word w at out[8 * w + s]: the
// numbers of PhiloxRandom, in another order.
inline void MultiplyHighLow(__m256i a, __m256i multiplier, __m256i* low, __m256i* high) {
  const __m256i even = _mm256_mul_epu32(a, multiplier);  // 64-bit products, lanes 0, 2, ..
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), multiplier);  // 1, 3, ..
  *low = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *high = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

void PhiloxFill(const tensorflow::random::PhiloxRandom& base, uint64_t first_sample,
                int64_t samples, uint32_t* out) {
  const __m256i multiplier_a = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i multiplier_b = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t group = 0; group < samples; group += 8) {
    auto generator = base;
    generator.Skip(first_sample + group);
    const auto& counter = generator.counter();
    __m256i c0, c1, c2, c3;
    if (counter[0] <= 0xFFFFFFFFu - 7) {  // the 8 counters differ in their low word only
      c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(counter[0])), lanes);
      c1 = _mm256_set1_epi32(static_cast<int>(counter[1]));
      c2 = _mm256_set1_epi32(static_cast<int>(counter[2]));
      c3 = _mm256_set1_epi32(static_cast<int>(counter[3]));
    } else {  // a carry out of the low word within the group: count each one out
      alignas(32) uint32_t words[4][8];
      for (int lane = 0; lane < 8; ++lane) {
        auto lane_generator = generator;
        lane_generator.Skip(lane);
        for (int w = 0; w < 4; ++w) words[w][lane] = lane_generator.counter()[w];
      }
      c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(words[0]));
      c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(words[1]));
      c2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(words[2]));
      c3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(words[3]));
    }
    uint32_t k0 = base.key()[0], k1 = base.key()[1];
    for (int round = 0; round < 10; ++round) {
      __m256i low0, high0, low1, high1;
      MultiplyHighLow(c0, multiplier_a, &low0, &high0);
      MultiplyHighLow(c2, multiplier_b, &low1, &high1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(high1, c1),
                            _mm256_set1_epi32(static_cast<int>(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(high0, c3),
                            _mm256_set1_epi32(static_cast<int>(k1)));
      c1 = low1;
      c3 = low0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    __m256i* words = reinterpret_cast<__m256i*>(out + 4 * group);
    _mm256_storeu_si256(words, c0);
    _mm256_storeu_si256(words + 1, c1);
    _mm256_storeu_si256(words + 2, c2);
    _mm256_storeu_si256(words + 3, c3);
  }
}

// A value is kept when its 32-bit draw is >= rate * 2^32 (exact to 2^-32).
uint32_t KeepThreshold(float rate) {
  return static_cast<uint32_t>(std::min(std::ldexp(static_cast<double>(rate), 32), 4294967295.0));
}

// y[j] = v[j] * scale where draws[j] >= threshold (keep[j] = 1), else 0 (keep[j] = 0), an
// exact 0 even for inf or NaN: the product's bits and-ed with the keep mask, branch-free so
// the compiler vectorises it.
inline void DropValues(const float* v, const uint32_t* draws, uint32_t threshold, float scale,
                       int64_t n, float* y, uint8_t* keep) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t mask = 0u - static_cast<uint32_t>(draws[j] >= threshold);  // ~0u: kept
    const float product = v[j] * scale;
    uint32_t bits;
    std::memcpy(&bits, &product, sizeof(bits));
    bits &= mask;
    std::memcpy(y + j, &bits, sizeof(bits));
    keep[j] = static_cast<uint8_t>(mask & 1u);
  }
}

template <typename T>
class DropoutOp : public OpKernel {
 public:
  explicit DropoutOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadRate(ctx, &rate_));
    OP_REQUIRES_OK(ctx, generator_.Init(ctx));
    threshold_ = KeepThreshold(rate_);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y = nullptr;
    Tensor* mask = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, x.shape(), &mask));
    const int64_t n = x.NumElements();
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    // One reservation per run; block b draws the samples [b, b + 1) * kBlock / 4 of it,
    // so the result does not depend on how the blocks are spread over threads.
    const auto base = generator_.ReserveSamples128(blocks * (kBlock / 4));
    const float scale = 1.0f / (1.0f - rate_);
    const uint32_t threshold = threshold_;
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    uint8_t* keep = mask->flat<uint8_t>().data();
    ForEachBlock(ctx, n, 20, [&](int64_t start, int64_t len) {
      alignas(64) uint32_t draws[kBlock];
      // Always the block's whole share of the reservation, also for a short last block.
      PhiloxFill(base, start / 4, kBlock / 4, draws);
      FloatArray buffer, result(len);
      const auto v = AsFloat(in + start, len, &buffer);
      DropValues(v.data(), draws, threshold, scale, len, result.data(), keep + start);
      Store(result, out + start);
    });
  }

 private:
  float rate_ = 0.0f;
  uint32_t threshold_ = 0;
  tensorflow::GuardedPhiloxRandom generator_;
};

template <typename T>
class DropoutGradOp : public OpKernel {
 public:
  explicit DropoutGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadRate(ctx, &rate_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& mask = ctx->input(1);
    OP_REQUIRES_OK(ctx, SameShape("TfzooDropoutGrad", dy, "mask", mask));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, dy.shape(), &dx));
    const float scale = 1.0f / (1.0f - rate_);
    const T* grad = dy.flat<T>().data();
    const uint8_t* keep = mask.flat<uint8_t>().data();
    T* out = dx->flat<T>().data();
    ForEachBlock(ctx, dy.NumElements(), 3, [&](int64_t start, int64_t n) {
      for (int64_t i = start; i < start + n; ++i) {
        out[i] = static_cast<T>(keep[i] ? static_cast<float>(grad[i]) * scale : 0.0f);
      }
    });
  }

 private:
  float rate_ = 0.0f;
};

// ------------------------------------------------------------------------ layer norm

// Rows of a [rows, width] tensor and its width; fails unless rank >= 1 and width > 0.
absl::Status RowsAndWidth(const Tensor& x, int64_t* rows, int64_t* width) {
  if (x.dims() < 1 || x.dim_size(x.dims() - 1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer norm needs a non-empty last axis, got shape ", x.shape().DebugString()));
  }
  *width = x.dim_size(x.dims() - 1);
  *rows = x.NumElements() / *width;
  return absl::OkStatus();
}

absl::Status CheckVector(const Tensor& t, int64_t size, const char* name) {
  if (t.dims() != 1 || t.dim_size(0) != size) {
    return absl::InvalidArgumentError(absl::StrCat("layer norm: ", name, " must have shape [",
                                                   size, "], got ", t.shape().DebugString()));
  }
  return absl::OkStatus();
}

template <typename T>
class LayerNormOp : public OpKernel {
 public:
  explicit LayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    int64_t rows = 0, width = 0;
    OP_REQUIRES_OK(ctx, RowsAndWidth(x, &rows, &width));
    OP_REQUIRES_OK(ctx, CheckVector(ctx->input(1), width, "gamma"));
    OP_REQUIRES_OK(ctx, CheckVector(ctx->input(2), width, "beta"));
    Tensor *y = nullptr, *mean = nullptr, *rstd = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows}), &rstd));
    const T* in = x.flat<T>().data();
    const ConstMap<float> gamma(ctx->input(1).flat<float>().data(), width);
    const ConstMap<float> beta(ctx->input(2).flat<float>().data(), width);
    T* out = y->flat<T>().data();
    float* means = mean->flat<float>().data();
    float* rstds = rstd->flat<float>().data();
    const float epsilon = epsilon_;
    Shard(ctx, rows, 8.0 * width, 8.0 * width, [&](int64_t first, int64_t last) {
      FloatArray buffer, result(width);
      for (int64_t r = first; r < last; ++r) {
        const auto row = AsFloat(in + r * width, width, &buffer);
        const float mu = row.mean();
        const float variance = (row - mu).square().mean();
        const float inv = 1.0f / std::sqrt(variance + epsilon);
        result = (row - mu) * inv * gamma + beta;
        Store(result, out + r * width);
        means[r] = mu;
        rstds[r] = inv;
      }
    });
  }

 private:
  float epsilon_ = 0.0f;
};

template <typename T>
class LayerNormGradOp : public OpKernel {
 public:
  explicit LayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    int64_t rows = 0, width = 0;
    OP_REQUIRES_OK(ctx, RowsAndWidth(x, &rows, &width));
    OP_REQUIRES_OK(ctx, SameShape("TfzooLayerNormGrad", dy, "x", x));
    OP_REQUIRES_OK(ctx, CheckVector(ctx->input(2), width, "gamma"));
    OP_REQUIRES_OK(ctx, CheckVector(ctx->input(3), rows, "mean"));
    OP_REQUIRES_OK(ctx, CheckVector(ctx->input(4), rows, "rstd"));
    Tensor *dx = nullptr, *dgamma = nullptr, *dbeta = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({width}), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({width}), &dbeta));
    const T* grad = dy.flat<T>().data();
    const T* in = x.flat<T>().data();
    const ConstMap<float> gamma(ctx->input(2).flat<float>().data(), width);
    const float* means = ctx->input(3).flat<float>().data();
    const float* rstds = ctx->input(4).flat<float>().data();
    T* out = dx->flat<T>().data();
    // Fixed chunks of rows, each with its own dgamma / dbeta partial sums, added in chunk
    // order at the end: the same result on any number of threads.
    const int64_t chunks = std::min<int64_t>(rows, 64);
    const int64_t per_chunk = (rows + chunks - 1) / chunks;
    std::vector<float> partial(2 * chunks * width, 0.0f);
    Shard(ctx, chunks, 12.0 * per_chunk * width, 12.0 * per_chunk * width,
          [&](int64_t first, int64_t last) {
      FloatArray xhat(width), g(width), result(width), x_buffer, dy_buffer;
      for (int64_t c = first; c < last; ++c) {
        Map<float> dgamma_sum(partial.data() + 2 * c * width, width);
        Map<float> dbeta_sum(partial.data() + (2 * c + 1) * width, width);
        for (int64_t r = c * per_chunk; r < std::min(rows, (c + 1) * per_chunk); ++r) {
          const auto row = AsFloat(in + r * width, width, &x_buffer);
          const auto dout = AsFloat(grad + r * width, width, &dy_buffer);
          const float inv = rstds[r];
          xhat = (row - means[r]) * inv;
          g = dout * gamma;
          const float mean_g = g.mean();
          const float mean_gx = (g * xhat).mean();
          result = inv * (g - mean_g - xhat * mean_gx);
          Store(result, out + r * width);
          dgamma_sum += dout * xhat;
          dbeta_sum += dout;
        }
      }
    });
    Map<float> dgamma_out(dgamma->flat<float>().data(), width);
    Map<float> dbeta_out(dbeta->flat<float>().data(), width);
    dgamma_out.setZero();
    dbeta_out.setZero();
    for (int64_t c = 0; c < chunks; ++c) {
      dgamma_out += ConstMap<float>(partial.data() + 2 * c * width, width);
      dbeta_out += ConstMap<float>(partial.data() + (2 * c + 1) * width, width);
    }
  }
};

// ---------------------------------------------------------------- attention softmax

// The rows of a scores tensor [..., width] and of its additive mask [masks, width]: rows
// r * per_mask ... (r + 1) * per_mask - 1 of the scores take mask row r (scores
// [batch, heads, queries, keys] with a mask [batch, 1, 1, keys]).
absl::Status AttentionRows(const Tensor& scores, const Tensor& adder, int64_t* rows,
                           int64_t* width, int64_t* per_mask) {
  if (scores.dims() < 1 || scores.dim_size(scores.dims() - 1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention softmax needs a non-empty last axis, got scores ",
        scores.shape().DebugString()));
  }
  *width = scores.dim_size(scores.dims() - 1);
  *rows = scores.NumElements() / *width;
  const int64_t masks = adder.NumElements() / *width;
  if (adder.dims() < 1 || adder.dim_size(adder.dims() - 1) != *width || masks == 0 ||
      *rows % masks != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention softmax: the mask ", adder.shape().DebugString(),
        " must be [batch, 1, 1, keys] for the scores ", scores.shape().DebugString()));
  }
  *per_mask = *rows / masks;
  return absl::OkStatus();
}

// softmax(scores * scale + adder) over the last axis in float, then dropout: outputs the
// dropped probabilities, the probabilities (for the gradient) and the keep-mask.
template <typename T>
class AttentionSoftmaxOp : public OpKernel {
 public:
  explicit AttentionSoftmaxOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(ctx, ReadRate(ctx, &rate_));
    OP_REQUIRES_OK(ctx, generator_.Init(ctx));
    threshold_ = KeepThreshold(rate_);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& scores = ctx->input(0);
    const Tensor& adder = ctx->input(1);
    int64_t rows = 0, width = 0, per_mask = 0;
    OP_REQUIRES_OK(ctx, AttentionRows(scores, adder, &rows, &width, &per_mask));
    Tensor *dropped = nullptr, *probs = nullptr, *mask = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, scores.shape(), &dropped));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, scores.shape(), &probs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, scores.shape(), &mask));
    // Rows go in blocks of about kBlock values; each block has its own share of one
    // reservation of draws, so the result does not depend on the threads.
    const int64_t rows_per_block = std::max<int64_t>(1, kBlock / width);
    const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
    const int64_t samples = ((rows_per_block * width + 3) / 4 + 7) / 8 * 8;
    const bool drops = threshold_ > 0;
    const auto base = generator_.ReserveSamples128(drops ? blocks * samples : 0);
    const float keep_scale = 1.0f / (1.0f - rate_);
    const T* in = scores.flat<T>().data();
    const T* add = adder.flat<T>().data();
    T* out = dropped->flat<T>().data();
    T* p_out = probs->flat<T>().data();
    uint8_t* keep = mask->flat<uint8_t>().data();
    Shard(ctx, blocks, 8.0 * rows_per_block * width, 40.0 * rows_per_block * width,
          [&](int64_t first, int64_t last) {
            std::vector<uint32_t> draws(drops ? 4 * samples : 0);
            FloatArray z(width), bias(width), dropped_row(width);
            for (int64_t b = first; b < last; ++b) {
              if (drops) PhiloxFill(base, b * samples, samples, draws.data());
              const int64_t row_end = std::min(rows, (b + 1) * rows_per_block);
              for (int64_t r = b * rows_per_block; r < row_end; ++r) {
                const int64_t offset = r * width;
                bias = ConstMap<T>(add + (r / per_mask) * width, width).template cast<float>();
                z = ConstMap<T>(in + offset, width).template cast<float>() * scale_ + bias;
                z = (z - z.maxCoeff()).exp();
                z /= z.sum();
                Store(z, p_out + offset);
                if (drops) {
                  DropValues(z.data(), draws.data() + (r - b * rows_per_block) * width,
                             threshold_, keep_scale, width, dropped_row.data(), keep + offset);
                  Store(dropped_row, out + offset);
                } else {
                  Store(z, out + offset);
                  std::fill(keep + offset, keep + offset + width, uint8_t{1});
                }
              }
            }
          });
  }

 private:
  float scale_ = 1.0f;
  float rate_ = 0.0f;
  uint32_t threshold_ = 0;
  tensorflow::GuardedPhiloxRandom generator_;
};

// The scores' gradient: g = dy * mask / (1 - rate); dscores = scale * p * (g - sum(g p)).
template <typename T>
class AttentionSoftmaxGradOp : public OpKernel {
 public:
  explicit AttentionSoftmaxGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(ctx, ReadRate(ctx, &rate_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& probs = ctx->input(1);
    const Tensor& mask = ctx->input(2);
    OP_REQUIRES_OK(ctx, SameShape("TfzooAttentionSoftmaxGrad", dy, "probs", probs));
    OP_REQUIRES_OK(ctx, SameShape("TfzooAttentionSoftmaxGrad", dy, "mask", mask));
    OP_REQUIRES(ctx, dy.dims() >= 1 && dy.dim_size(dy.dims() - 1) > 0,
                absl::InvalidArgumentError("attention softmax gradient of an empty last axis"));
    const int64_t width = dy.dim_size(dy.dims() - 1);
    const int64_t rows = dy.NumElements() / width;
    Tensor* dscores = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, dy.shape(), &dscores));
    const float keep_scale = 1.0f / (1.0f - rate_);
    const float scale = scale_;
    const T* grad = dy.flat<T>().data();
    const T* p = probs.flat<T>().data();
    const uint8_t* keep = mask.flat<uint8_t>().data();
    T* out = dscores->flat<T>().data();
    Shard(ctx, rows, 8.0 * width, 12.0 * width, [&](int64_t first, int64_t last) {
      FloatArray g(width), pf(width);
      for (int64_t r = first; r < last; ++r) {
        const int64_t offset = r * width;
        for (int64_t j = 0; j < width; ++j) {
          g[j] = keep[offset + j] ? static_cast<float>(grad[offset + j]) * keep_scale : 0.0f;
        }
        pf = ConstMap<T>(p + offset, width).template cast<float>();
        const float dot = (g * pf).sum();
        FloatArray result = scale * pf * (g - dot);
        Store(result, out + offset);
      }
    });
  }

 private:
  float scale_ = 1.0f;
  float rate_ = 0.0f;
};

// ----------------------------------------------------------------------- registration

absl::Status SameShapeAndMask(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->input(0));
  return absl::OkStatus();
}

absl::Status LayerNormShape(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->Vector(c->UnknownDim()));
  c->set_output(2, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

absl::Status LayerNormGradShape(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(1));
  c->set_output(1, c->input(2));
  c->set_output(2, c->input(2));
  return absl::OkStatus();
}

REGISTER_OP("TfzooGelu")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("TfzooGeluGrad")
    .Input("dy: T")
    .Input("x: T")
    .Output("dx: T")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("TfzooDropout")
    .Input("x: T")
    .Output("y: T")
    .Output("mask: uint8")
    .Attr("T: {float, bfloat16, half}")
    .Attr("rate: float")
    .Attr("seed: int = 0")
    .Attr("seed2: int = 0")
    .SetIsStateful()
    .SetShapeFn(SameShapeAndMask);

REGISTER_OP("TfzooDropoutGrad")
    .Input("dy: T")
    .Input("mask: uint8")
    .Output("dx: T")
    .Attr("T: {float, bfloat16, half}")
    .Attr("rate: float")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("TfzooAttentionSoftmax")
    .Input("scores: T")
    .Input("adder: T")
    .Output("dropped: T")
    .Output("probs: T")
    .Output("mask: uint8")
    .Attr("T: {float, bfloat16, half}")
    .Attr("scale: float")
    .Attr("rate: float")
    .Attr("seed: int = 0")
    .Attr("seed2: int = 0")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("TfzooAttentionSoftmaxGrad")
    .Input("dy: T")
    .Input("probs: T")
    .Input("mask: uint8")
    .Output("dscores: T")
    .Attr("T: {float, bfloat16, half}")
    .Attr("scale: float")
    .Attr("rate: float")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_OP("TfzooLayerNorm")
    .Input("x: T")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: T")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("T: {float, bfloat16, half}")
    .Attr("epsilon: float")
    .SetShapeFn(LayerNormShape);

REGISTER_OP("TfzooLayerNormGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Output("dx: T")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn(LayerNormGradShape);

#define REGISTER_ELEMENTWISE(T)                                                        \
  REGISTER_KERNEL_BUILDER(Name("TfzooGelu").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          GeluOp<T>);                                                  \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooGeluGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), GeluGradOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooDropout").Device(DEVICE_CPU).TypeConstraint<T>("T"), DropoutOp<T>);   \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooDropoutGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), DropoutGradOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooAttentionSoftmax").Device(DEVICE_CPU).TypeConstraint<T>("T"),         \
      AttentionSoftmaxOp<T>);                                                          \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooAttentionSoftmaxGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
      AttentionSoftmaxGradOp<T>);                                                      \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooLayerNorm").Device(DEVICE_CPU).TypeConstraint<T>("T"), LayerNormOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TfzooLayerNormGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
      LayerNormGradOp<T>);

REGISTER_ELEMENTWISE(float);
REGISTER_ELEMENTWISE(Eigen::bfloat16);
REGISTER_ELEMENTWISE(Eigen::half);
#undef REGISTER_ELEMENTWISE


}  // namespace
}  // namespace tfzoo
