// One pass over X for the loss and gradient of linear least squares (float32).
//
// For r = X w + b - y this computes mean(r^2), (2/n) X^T r and (2/n) sum(r)
// reading every row of X from memory once: rows are taken in blocks that fit
// in L1, first for their residuals, then again, from L1, for the gradient. XLA
// computes X w and X^T r as two products, so it streams X twice per step (jgd's
// benchmark: 1,000,000 x 16).
//
// A second handler does the same for a sweep: many members' (w, b) on one X,
// a vector of members at a time with their weights and gradients in registers.
//
// Rows are cut into fixed partitions, each summed on its own and combined in
// partition order (in double), so the result does not depend on how many
// threads of XLA's pool took part. Built by jgd/_native/__init__.py with the
// machine's compiler and XLA's FFI headers, for one instruction set chosen at
// build time (jgd_native_variant): AVX-512 intrinsics (16 lanes), or portable
// vector-extension code with 8 lanes on AVX2 + FMA and 4 elsewhere (NEON, SSE2).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace ffi = xla::ffi;

#if defined(__AVX2__) && defined(__FMA__)
#define JGD_AVX2 1
#endif

#if defined(__AVX512F__)
#define JGD_VARIANT "avx512"
#elif defined(JGD_AVX2)
#define JGD_VARIANT "avx2"
#else
#define JGD_VARIANT "generic"  // 4 lanes: NEON on ARM64, SSE2 on x86-64
#endif

// The instruction set this library was compiled for; the loader refuses a
// library that is not the variant it asked for.
extern "C" const char* jgd_native_variant() { return JGD_VARIANT; }

// Whether this CPU runs that variant's instructions (checked before any call,
// since a cache folder may be shared with another machine).
extern "C" int jgd_native_cpu_ok() {
#if defined(__AVX512F__)
  return __builtin_cpu_supports("avx512f");
#elif defined(JGD_AVX2)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 1;
#endif
}

namespace {

constexpr int64_t kBlockRows = 256;       // AVX-512: 16 KB of X at 16 features, in L1
constexpr int64_t kPartitionRows = 16384; // fixed, so sums do not depend on threads

struct Problem {
  const float* X;
  const float* y;
  const float* w;
  float b;
  int64_t n, d;
};

// A sweep's kernel: XLA writes the (rows, members) residual matrix to memory
// and reads it back for the losses and the gradients; here each row's
// residuals for a vector of members live in registers, and X^T R accumulates in
// L1. W is (d, m) member-minor, m a multiple of 16. out: d x m gradient sums,
// then m sums of r, m of r^2.
constexpr int64_t kMemberPartitionRows = 512;
constexpr int64_t kMaxMemberFeatures = 16;  // W's and G's columns stay in registers

#if defined(__AVX512F__)
// ---- AVX-512: 16 lanes, intrinsics. -------------------------------------------

// Horizontal sums of 16 vectors at once: lane k of the result is the sum of
// the lanes of p[k] (a 16 x 16 transpose folded into the additions).
inline __m512 SumsOf16(const __m512* p) {
  __m512 q[8];
  for (int k = 0; k < 8; ++k) {
    __m512 a = p[2 * k], c = p[2 * k + 1];
    q[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, c, 0x44), _mm512_shuffle_f32x4(a, c, 0xEE));
  }
  __m512 s[4];
  for (int k = 0; k < 4; ++k) {
    __m512 a = q[2 * k], c = q[2 * k + 1];
    s[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, c, 0x88), _mm512_shuffle_f32x4(a, c, 0xDD));
  }
  // s[m], 128-bit block j: four partial sums of row 4m + j.
  __m512 u0 = _mm512_add_ps(_mm512_unpacklo_ps(s[0], s[1]), _mm512_unpackhi_ps(s[0], s[1]));
  __m512 u1 = _mm512_add_ps(_mm512_unpacklo_ps(s[2], s[3]), _mm512_unpackhi_ps(s[2], s[3]));
  __m512d a = _mm512_castps_pd(u0), c = _mm512_castps_pd(u1);
  __m512 v = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, c)),
                           _mm512_castpd_ps(_mm512_unpackhi_pd(a, c)));
  // Lane 4j + m of v holds row 4m + j; put row k in lane k.
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, v);
}

// Sums for rows [begin, end): out[0:d] = X^T r, out[d] = sum(r), out[d+1] = sum(r^2).
template <int kChunks>
void SumPartition(const Problem& pb, int64_t begin, int64_t end, float* out) {
  const int64_t d = pb.d;
  const __mmask16 last = static_cast<__mmask16>(
      (d % 16 == 0) ? 0xFFFF : ((1u << (d % 16)) - 1u));
  auto mask = [&](int c) { return c == kChunks - 1 ? last : static_cast<__mmask16>(0xFFFF); };
  __m512 w[kChunks];
  for (int c = 0; c < kChunks; ++c) w[c] = _mm512_maskz_loadu_ps(mask(c), pb.w + 16 * c);
  __m512 g[4][kChunks];
  for (auto& set : g)
    for (auto& v : set) v = _mm512_setzero_ps();
  __m512 sum_r = _mm512_setzero_ps(), sum_r2 = _mm512_setzero_ps();
  const __m512 bias = _mm512_set1_ps(pb.b);
  alignas(64) float r[kBlockRows];

  for (int64_t start = begin; start < end; start += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, end - start);
    const float* X = pb.X + start * d;
    // Residuals of the block, 16 rows at a time (this is where X is read from memory).
    int64_t i = 0;
    for (; i + 16 <= rows; i += 16) {
      __m512 p[16];
      for (int k = 0; k < 16; ++k) {
        const float* row = X + (i + k) * d;
        __m512 acc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask(0), row), w[0]);
        for (int c = 1; c < kChunks; ++c)
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask(c), row + 16 * c), w[c], acc);
        p[k] = acc;
      }
      __m512 res = _mm512_sub_ps(_mm512_add_ps(SumsOf16(p), bias),
                                 _mm512_loadu_ps(pb.y + start + i));
      _mm512_store_ps(r + i, res);
      sum_r = _mm512_add_ps(sum_r, res);
      sum_r2 = _mm512_fmadd_ps(res, res, sum_r2);
    }
    for (; i < rows; ++i) {  // the partition's last few rows
      const float* row = X + i * d;
      __m512 acc = _mm512_setzero_ps();
      for (int c = 0; c < kChunks; ++c)
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask(c), row + 16 * c), w[c], acc);
      const float res = _mm512_reduce_add_ps(acc) + pb.b - pb.y[start + i];
      r[i] = res;
      const __m512 lane0 = _mm512_maskz_mov_ps(1, _mm512_set1_ps(res));
      sum_r = _mm512_add_ps(sum_r, lane0);
      sum_r2 = _mm512_fmadd_ps(lane0, lane0, sum_r2);
    }
    // Gradient of the block: the same rows again, now from L1. Four sets of
    // accumulators so consecutive rows do not wait on each other.
    for (int64_t j = 0; j < rows; ++j) {
      const float* row = X + j * d;
      const __m512 rj = _mm512_set1_ps(r[j]);
      auto& set = g[j & 3];
      for (int c = 0; c < kChunks; ++c)
        set[c] = _mm512_fmadd_ps(rj, _mm512_maskz_loadu_ps(mask(c), row + 16 * c), set[c]);
    }
  }
  for (int c = 0; c < kChunks; ++c) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(g[0][c], g[1][c]),
                                         _mm512_add_ps(g[2][c], g[3][c])));
    for (int64_t k = 0; k < 16 && 16 * c + k < d; ++k) out[16 * c + k] = lanes[k];
  }
  out[d] = _mm512_reduce_add_ps(sum_r);
  out[d + 1] = _mm512_reduce_add_ps(sum_r2);
}

using PartitionFn = void (*)(const Problem&, int64_t, int64_t, float*);

// Up to 4 chunks of 16 features: 64 features.
PartitionFn PartitionFor(int64_t d) {
  switch ((d + 15) / 16) {
    case 1: return SumPartition<1>;
    case 2: return SumPartition<2>;
    case 3: return SumPartition<3>;
    case 4: return SumPartition<4>;
    default: return nullptr;
  }
}

// Sixteen members at a time, their W and gradient columns held in registers
// (D is a template argument for that), two rows per iteration so the two
// residuals' chains of FMAs overlap.
template <int D>
void SumMembersPartition(const float* X, const float* y, const float* W, const float* b,
                         int64_t m, int64_t begin, int64_t end, float* out) {
  float* sum_r = out + D * m;
  float* sum_r2 = sum_r + m;
  for (int64_t v = 0; v < m; v += 16) {
    __m512 w[D], g[D];
    for (int j = 0; j < D; ++j) {
      w[j] = _mm512_loadu_ps(W + j * m + v);
      g[j] = _mm512_setzero_ps();
    }
    const __m512 bias = _mm512_loadu_ps(b + v);
    __m512 acc_r = _mm512_setzero_ps(), acc_r2 = _mm512_setzero_ps();
    int64_t i = begin;
    for (; i + 2 <= end; i += 2) {
      const float* x0 = X + i * D;
      const float* x1 = x0 + D;
      __m512 r0 = _mm512_sub_ps(bias, _mm512_set1_ps(y[i]));
      __m512 r1 = _mm512_sub_ps(bias, _mm512_set1_ps(y[i + 1]));
      for (int j = 0; j < D; ++j) {
        r0 = _mm512_fmadd_ps(_mm512_set1_ps(x0[j]), w[j], r0);
        r1 = _mm512_fmadd_ps(_mm512_set1_ps(x1[j]), w[j], r1);
      }
      acc_r = _mm512_add_ps(acc_r, _mm512_add_ps(r0, r1));
      acc_r2 = _mm512_fmadd_ps(r0, r0, _mm512_fmadd_ps(r1, r1, acc_r2));
      for (int j = 0; j < D; ++j)
        g[j] = _mm512_fmadd_ps(_mm512_set1_ps(x0[j]), r0,
                               _mm512_fmadd_ps(_mm512_set1_ps(x1[j]), r1, g[j]));
    }
    for (; i < end; ++i) {
      const float* x0 = X + i * D;
      __m512 r0 = _mm512_sub_ps(bias, _mm512_set1_ps(y[i]));
      for (int j = 0; j < D; ++j) r0 = _mm512_fmadd_ps(_mm512_set1_ps(x0[j]), w[j], r0);
      acc_r = _mm512_add_ps(acc_r, r0);
      acc_r2 = _mm512_fmadd_ps(r0, r0, acc_r2);
      for (int j = 0; j < D; ++j) g[j] = _mm512_fmadd_ps(_mm512_set1_ps(x0[j]), r0, g[j]);
    }
    for (int j = 0; j < D; ++j) _mm512_storeu_ps(out + j * m + v, g[j]);
    _mm512_storeu_ps(sum_r + v, acc_r);
    _mm512_storeu_ps(sum_r2 + v, acc_r2);
  }
}

#else
// ---- Every other CPU: GCC/Clang vector extensions, kLanes floats a vector. --
//
// The same two kernels as the AVX-512 ones above, written once over a vector
// type of kLanes floats: 8 with AVX2 + FMA (x86-64 without AVX-512), 4
// elsewhere (NEON on ARM64, SSE2 on older x86-64). The compiler turns the
// element-wise operators into the target's instructions; only a partial load
// uses an intrinsic where there is one.
#if defined(JGD_AVX2)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(4 * kLanes)));

// Unaligned load and store (memcpy: X's rows start anywhere).
inline Vec Load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void Store(float* p, Vec v) { __builtin_memcpy(p, &v, sizeof v); }

// The first `count` lanes of p, zeros after them, never reading p[count] or
// beyond: the last row's partial chunk may end at the end of X's buffer.
inline Vec LoadFirst(const float* p, int count) {
#if defined(JGD_AVX2)
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes));
#else
  Vec v = {};
  for (int k = 0; k < count; ++k) v[k] = p[k];
  return v;
#endif
}

inline Vec Splat(float x) {
#if defined(JGD_AVX2)
  return _mm256_set1_ps(x);
#else
  return Vec{x, x, x, x};  // (Vec{} + x would add 0.0f first: -0.0f + 0.0f is +0.0f)
#endif
}

// a * b + c in one rounding where the target has FMA (-ffp-contract=fast
// contracts it; AVX2 spells it out so it does not depend on the flag).
inline Vec Fma(Vec a, Vec b, Vec c) {
#if defined(JGD_AVX2)
  return _mm256_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}

inline float ReduceAdd(Vec v) {
  float s = 0.0f;
  for (int k = 0; k < kLanes; ++k) s += v[k];
  return s;
}

// Where row k of a group of kLanes rows goes among SumsOfLanes' inputs, so that
// its sum comes out in lane k.
#if defined(JGD_AVX2)
constexpr int kSlot[8] = {0, 2, 4, 6, 1, 3, 5, 7};
#else
constexpr int kSlot[4] = {0, 1, 2, 3};
#endif

// Horizontal sums of kLanes vectors at once: lane k of the result is the sum of
// the lanes of the vector in p[kSlot[k]] (a transpose folded into the
// additions, as SumsOf16 does with 16 lanes).
inline Vec SumsOfLanes(const Vec* p) {
#if defined(JGD_AVX2)
  Vec q[4], s[2];
  for (int k = 0; k < 4; ++k) {  // 128-bit halves: q[k] = rows 2k | 2k+1, 4 partials each
    const Vec a = p[2 * k], c = p[2 * k + 1];
    q[k] = __builtin_shufflevector(a, c, 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(a, c, 4, 5, 6, 7, 12, 13, 14, 15);
  }
  for (int k = 0; k < 2; ++k) {  // pairs of lanes: 2 partials each
    const Vec a = q[2 * k], c = q[2 * k + 1];
    s[k] = __builtin_shufflevector(a, c, 0, 1, 8, 9, 4, 5, 12, 13) +
           __builtin_shufflevector(a, c, 2, 3, 10, 11, 6, 7, 14, 15);
  }
  return __builtin_shufflevector(s[0], s[1], 0, 2, 8, 10, 4, 6, 12, 14) +
         __builtin_shufflevector(s[0], s[1], 1, 3, 9, 11, 5, 7, 13, 15);
#else
  const Vec q0 = __builtin_shufflevector(p[0], p[1], 0, 1, 4, 5) +
                 __builtin_shufflevector(p[0], p[1], 2, 3, 6, 7);
  const Vec q1 = __builtin_shufflevector(p[2], p[3], 0, 1, 4, 5) +
                 __builtin_shufflevector(p[2], p[3], 2, 3, 6, 7);
  return __builtin_shufflevector(q0, q1, 0, 2, 4, 6) + __builtin_shufflevector(q0, q1, 1, 3, 5, 7);
#endif
}

// Blocks of about 8 KB of X (at most 128 rows), smaller than AVX-512's 256
// rows: while a block's gradient runs from L1 no load goes to memory, and with
// small blocks the out-of-order window already holds the next block's loads
// (1M x 16 on a Zen 3 core: 8 KB blocks 0.82 of a plain read's speed, 16 KB
// 0.67; at 64 features 0.86 against 0.60).
constexpr int64_t kVecBlockBytes = 8192;
constexpr int64_t kVecBlockRows = 128;

// Sums for rows [begin, end) as in the AVX-512 SumPartition: kChunks vectors a
// row, kPartial when the last one is not full (d % kLanes != 0).
template <int kChunks, bool kPartial>
void SumPartition(const Problem& pb, int64_t begin, int64_t end, float* out) {
  const int64_t d = pb.d;
  const int tail = static_cast<int>(d - (kChunks - 1) * kLanes);  // lanes of the last chunk
  auto load = [&](const float* row, int c) {
    return (kPartial && c == kChunks - 1) ? LoadFirst(row + kLanes * c, tail)
                                          : Load(row + kLanes * c);
  };
  // Fewer accumulator sets for wide rows: 16 vector registers on AVX2.
  constexpr int kSets = kChunks <= 2 ? 4 : (kChunks <= 4 ? 2 : 1);
  Vec w[kChunks];
  for (int c = 0; c < kChunks; ++c) w[c] = load(pb.w, c);
  Vec g[kSets][kChunks] = {};
  Vec sum_r = {}, sum_r2 = {};
  const Vec bias = Splat(pb.b);
  alignas(64) float r[kVecBlockRows];
  const int64_t fit = std::min<int64_t>(kVecBlockRows, kVecBlockBytes / (4 * d));
  const int64_t block = std::max<int64_t>(kLanes, fit / kLanes * kLanes);  // whole groups

  for (int64_t start = begin; start < end; start += block) {
    const int64_t rows = std::min(block, end - start);
    const float* X = pb.X + start * d;
    // Residuals of the block, kLanes rows at a time (X is read from memory here).
    int64_t i = 0;
    for (; i + kLanes <= rows; i += kLanes) {
      Vec p[kLanes];
      for (int k = 0; k < kLanes; ++k) {
        const float* row = X + (i + k) * d;
        Vec acc = load(row, 0) * w[0];
        for (int c = 1; c < kChunks; ++c) acc = Fma(load(row, c), w[c], acc);
        p[kSlot[k]] = acc;
      }
      const Vec res = (SumsOfLanes(p) + bias) - Load(pb.y + start + i);
      Store(r + i, res);
      sum_r += res;
      sum_r2 = Fma(res, res, sum_r2);
    }
    for (; i < rows; ++i) {  // the partition's last few rows
      const float* row = X + i * d;
      Vec acc = {};
      for (int c = 0; c < kChunks; ++c) acc = Fma(load(row, c), w[c], acc);
      const float res = ReduceAdd(acc) + pb.b - pb.y[start + i];
      r[i] = res;
      Vec lane0 = {};
      lane0[0] = res;
      sum_r += lane0;
      sum_r2 = Fma(lane0, lane0, sum_r2);
    }
    // Gradient of the block from L1, kSets sets of accumulators so consecutive
    // rows do not wait on each other (unrolled: indexing the sets with j % kSets
    // would keep them in memory).
    // Meanwhile ask for the next block, row by row: the hardware prefetcher
    // alone leaves memory idle while this loop runs from L1.
    int64_t j = 0;
    for (; j + kSets <= rows; j += kSets) {
#ifndef JGD_NO_PREFETCH
      for (int64_t line = 0; line < kSets * d; line += 16)
        __builtin_prefetch(X + (block + j) * d + line);
#endif
      for (int s = 0; s < kSets; ++s) {
        const float* row = X + (j + s) * d;
        const Vec rj = Splat(r[j + s]);
        for (int c = 0; c < kChunks; ++c) g[s][c] = Fma(rj, load(row, c), g[s][c]);
      }
    }
    for (; j < rows; ++j) {
      const float* row = X + j * d;
      const Vec rj = Splat(r[j]);
      for (int c = 0; c < kChunks; ++c) g[0][c] = Fma(rj, load(row, c), g[0][c]);
    }
  }
  for (int c = 0; c < kChunks; ++c) {
    Vec total = g[0][c];
    for (int s = 1; s < kSets; ++s) total += g[s][c];
    for (int64_t k = 0; k < kLanes && kLanes * c + k < d; ++k) out[kLanes * c + k] = total[k];
  }
  out[d] = ReduceAdd(sum_r);
  out[d + 1] = ReduceAdd(sum_r2);
}

using PartitionFn = void (*)(const Problem&, int64_t, int64_t, float*);
constexpr int kMaxChunks = 64 / kLanes;  // 64 features

template <int... Cs>
PartitionFn PartitionForChunks(int64_t d, std::integer_sequence<int, Cs...>) {
  const int64_t chunks = (d + kLanes - 1) / kLanes;
  const bool partial = d % kLanes != 0;
  PartitionFn fn = nullptr;
  ((chunks == Cs + 1 ? (fn = partial ? SumPartition<Cs + 1, true> : SumPartition<Cs + 1, false>,
                        0)
                     : 0),
   ...);
  return fn;
}

PartitionFn PartitionFor(int64_t d) {
  if (d < 1 || d > 64) return nullptr;
  return PartitionForChunks(d, std::make_integer_sequence<int, kMaxChunks>());
}

// kLanes members at a time, as the AVX-512 SumMembersPartition does 16.
template <int D>
void SumMembersPartition(const float* X, const float* y, const float* W, const float* b,
                         int64_t m, int64_t begin, int64_t end, float* out) {
  float* sum_r = out + D * m;
  float* sum_r2 = sum_r + m;
  for (int64_t v = 0; v < m; v += kLanes) {
    Vec w[D], g[D];
    for (int j = 0; j < D; ++j) {
      w[j] = Load(W + j * m + v);
      g[j] = Vec{};
    }
    const Vec bias = Load(b + v);
    Vec acc_r = {}, acc_r2 = {};
    int64_t i = begin;
    for (; i + 2 <= end; i += 2) {
      const float* x0 = X + i * D;
      const float* x1 = x0 + D;
      Vec r0 = bias - Splat(y[i]);
      Vec r1 = bias - Splat(y[i + 1]);
      for (int j = 0; j < D; ++j) {
        r0 = Fma(Splat(x0[j]), w[j], r0);
        r1 = Fma(Splat(x1[j]), w[j], r1);
      }
      acc_r += r0 + r1;
      acc_r2 = Fma(r0, r0, Fma(r1, r1, acc_r2));
      for (int j = 0; j < D; ++j) g[j] = Fma(Splat(x0[j]), r0, Fma(Splat(x1[j]), r1, g[j]));
    }
    for (; i < end; ++i) {
      const float* x0 = X + i * D;
      Vec r0 = bias - Splat(y[i]);
      for (int j = 0; j < D; ++j) r0 = Fma(Splat(x0[j]), w[j], r0);
      acc_r += r0;
      acc_r2 = Fma(r0, r0, acc_r2);
      for (int j = 0; j < D; ++j) g[j] = Fma(Splat(x0[j]), r0, g[j]);
    }
    for (int j = 0; j < D; ++j) Store(out + j * m + v, g[j]);
    Store(sum_r + v, acc_r);
    Store(sum_r2 + v, acc_r2);
  }
}
#endif  // __AVX512F__

// ---- Shared by every variant: threads, partitions, XLA's calls. ----------------

using MembersFn = void (*)(const float*, const float*, const float*, const float*, int64_t,
                           int64_t, int64_t, float*);

template <int... Ds>
MembersFn MembersFor(int64_t d, std::integer_sequence<int, Ds...>) {
  MembersFn fn = nullptr;
  ((d == Ds + 1 ? (fn = SumMembersPartition<Ds + 1>, 0) : 0), ...);
  return fn;
}

// What the caller and the pool's threads share; kept alive by every task, since
// a task may start after the caller has collected all partitions and returned
// (it then finds no partition left and touches nothing else).
struct Work {
  std::function<void(int64_t, float*)> sum_partition;  // (partition, its sums)
  int64_t partitions = 0, stride = 0;
  std::vector<float> sums;  // partitions x stride
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void Run() {
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < partitions;) {
      sum_partition(p, sums.data() + p * stride);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Runs sum_partition for every partition on the caller and XLA's pool, then adds
// the partitions' sums in partition order, in double: the same result whichever
// thread summed which partition.
std::vector<double> SumPartitions(ffi::ThreadPool& pool, int64_t partitions, int64_t stride,
                                  std::function<void(int64_t, float*)> sum_partition) {
  auto work = std::make_shared<Work>();
  work->sum_partition = std::move(sum_partition);
  work->partitions = partitions;
  work->stride = stride;
  work->sums.assign(partitions * stride, 0.0f);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), partitions) - 1;
  for (int64_t k = 0; k < helpers; ++k) pool.Schedule([work] { work->Run(); });
  work->Run();
  while (work->done.load(std::memory_order_acquire) < partitions) std::this_thread::yield();
  std::vector<double> total(stride, 0.0);
  for (int64_t p = 0; p < partitions; ++p)
    for (int64_t k = 0; k < stride; ++k) total[k] += work->sums[p * stride + k];
  return total;
}

ffi::Error LinearMseImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> X, ffi::Buffer<ffi::F32> y,
                         ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> b,
                         ffi::ResultBuffer<ffi::F32> loss, ffi::ResultBuffer<ffi::F32> grad_w,
                         ffi::ResultBuffer<ffi::F32> grad_b) {
  auto x_dims = X.dimensions();
  if (x_dims.size() != 2 || y.dimensions().size() != 1 || w.dimensions().size() != 1 ||
      b.dimensions().size() != 0 || y.dimensions()[0] != x_dims[0] ||
      w.dimensions()[0] != x_dims[1] || grad_w->dimensions().size() != 1 ||
      grad_w->dimensions()[0] != x_dims[1]) {
    return ffi::Error::InvalidArgument("jgd linear_mse: expected X (n, d), y (n,), w (d,), b ()");
  }
  const int64_t n = x_dims[0], d = x_dims[1];
  PartitionFn fn = PartitionFor(d);
  if (n == 0 || fn == nullptr) {
    return ffi::Error::InvalidArgument("jgd linear_mse: needs 1 <= d <= 64 and n >= 1");
  }
  const Problem problem{X.typed_data(), y.typed_data(), w.typed_data(), b.typed_data()[0], n, d};
  std::vector<double> total = SumPartitions(
      pool, (n + kPartitionRows - 1) / kPartitionRows, d + 2, [problem, fn](int64_t p, float* out) {
        const int64_t begin = p * kPartitionRows;
        fn(problem, begin, std::min(problem.n, begin + kPartitionRows), out);
      });
  const double scale = 2.0 / static_cast<double>(n);
  for (int64_t k = 0; k < d; ++k) grad_w->typed_data()[k] = static_cast<float>(total[k] * scale);
  grad_b->typed_data()[0] = static_cast<float>(total[d] * scale);
  loss->typed_data()[0] = static_cast<float>(total[d + 1] / static_cast<double>(n));
  return ffi::Error::Success();
}

ffi::Error LinearMseMembersImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> X,
                                ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> W,
                                ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> loss,
                                ffi::ResultBuffer<ffi::F32> grad_w,
                                ffi::ResultBuffer<ffi::F32> grad_b) {
  auto x_dims = X.dimensions();
  auto w_dims = W.dimensions();
  if (x_dims.size() != 2 || y.dimensions().size() != 1 || w_dims.size() != 2 ||
      b.dimensions().size() != 1 || y.dimensions()[0] != x_dims[0] || w_dims[0] != x_dims[1] ||
      b.dimensions()[0] != w_dims[1] || w_dims[1] % 16 != 0 || x_dims[0] == 0) {
    return ffi::Error::InvalidArgument(
        "jgd linear_mse_members: expected X (n, d), y (n,), W (d, m), b (m,), m % 16 == 0");
  }
  const int64_t n = x_dims[0], d = x_dims[1], m = w_dims[1];
  MembersFn fn = MembersFor(d, std::make_integer_sequence<int, kMaxMemberFeatures>());
  if (fn == nullptr) {
    return ffi::Error::InvalidArgument("jgd linear_mse_members: needs 1 <= d <= 16");
  }
  const float *Xp = X.typed_data(), *yp = y.typed_data(), *Wp = W.typed_data(),
              *bp = b.typed_data();
  std::vector<double> total = SumPartitions(
      pool, (n + kMemberPartitionRows - 1) / kMemberPartitionRows, (d + 2) * m,
      [=](int64_t p, float* out) {
        const int64_t begin = p * kMemberPartitionRows;
        fn(Xp, yp, Wp, bp, m, begin, std::min(n, begin + kMemberPartitionRows), out);
      });
  const double scale = 2.0 / static_cast<double>(n);
  for (int64_t k = 0; k < d * m; ++k) grad_w->typed_data()[k] = static_cast<float>(total[k] * scale);
  for (int64_t k = 0; k < m; ++k) {
    grad_b->typed_data()[k] = static_cast<float>(total[d * m + k] * scale);
    loss->typed_data()[k] = static_cast<float>(total[(d + 1) * m + k] / static_cast<double>(n));
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JgdLinearMseF32, LinearMseImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // X (n, d)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // y (n,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w (d,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b ()
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mean(r^2)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // (2/n) X^T r
                                  .Ret<ffi::Buffer<ffi::F32>>()  // (2/n) sum(r)
);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JgdLinearMseMembersF32, LinearMseMembersImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // X (n, d)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // y (n,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (d, m)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b (m,)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // mean(r^2) per member (m,)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // (2/n) X^T R (d, m)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // (2/n) sum(r) per member (m,)
);
