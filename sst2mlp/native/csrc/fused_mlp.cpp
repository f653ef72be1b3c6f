// The whole forward pass of a trained sst2mlp MLP as one C++ call, for the `fused` impl.
//
// At batch 1 the model does ~70k multiply-adds, a few microseconds of work, while
// each PyTorch operator call costs several microseconds of dispatch: the fused
// kernel pays for one call. It computes the same function as the dense model,
// float32 throughout, summing in a different order:
//   input layer   h = relu(b0 + sum_j counts[j] * W0[indices[j], :])   (rows of the words present)
//   hidden layer  h = relu(b + sum_{i: h[i] > 0} h[i] * W^T[i, :])     (rows of the active units)
//   output        logit = b_out + dot(h, w_out)
// Skipping the terms with a zero factor leaves every sum unchanged.
// From kBatchedRows rows on, a hidden layer is a matrix product over blocks of rows instead (over the inputs active
// in some row of the block): each weight is loaded once per block, not once per active unit of every row. It adds
// the same terms in the same order (a zero factor adds an exact zero), so the two paths give the same logits.
// A large batch runs in chunks of rows, each through all layers, so that its activations stay in the L2 cache.
// Built with skip_inactive=false, it reads every input of a hidden layer, zeros included: the same sums (a zero
// factor adds an exact zero) at the dense model's FLOPs, which tells the skipping's share of its speed from the rest.
// Only the headers it uses, not <torch/extension.h>: that one (all of libtorch's C++ API) doubles the build's
// CPU time, 36 s against 18 s on the 2-core AMD VM, which every fresh machine and CI run pays.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kGrainRows = 16;  // rows per task when a batch is split over threads
constexpr int64_t kFloatsPerLine = 16;  // a 64-byte cache line
// Floats per vector: one register. GCC lowers a generic vector wider than the registers through the stack (a
// 16-float vector on AVX2 made the kernel 8x slower than TorchScript at batch 64 on a Zen 3 VM).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr const char* kVectors = "avx512";
#elif defined(__AVX__)
constexpr int kLanes = 8;
constexpr const char* kVectors = "avx2";
#else
// 4 floats: NEON on aarch64, SSE2 on x86-64 without target flags (the portable build), the compiler's own elsewhere
constexpr int kLanes = 4;
#if defined(__aarch64__) || defined(__ARM_NEON)
constexpr const char* kVectors = "neon";
#else
constexpr const char* kVectors = "generic";
#endif
#endif
// A register constraint for a vector, in fma_peak's empty asm: SSE/AVX registers on x86, SIMD registers on ARM.
#if defined(__aarch64__)
#define VECTOR_REGISTER "+w"
#else
#define VECTOR_REGISTER "+x"
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
// Loads and stores through an unaligned, aliasing vector type: with memcpy into arrays of Vec, GCC 12 kept the
// micro-kernel's sums on the stack, a store per multiply-add.
typedef float UnalignedVec __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float)), may_alias));
inline Vec load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
// kLanes int8 values as floats. GCC 12 turns __builtin_convertvector from int8 into one scalar instruction per value.
inline Vec load(const int8_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vec>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
#elif defined(__AVX2__)
  return reinterpret_cast<Vec>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
#else
  Vec v;
  for (int i = 0; i < kLanes; ++i) v[i] = static_cast<float>(p[i]);
  return v;
#endif
}
inline void store(float* p, Vec v) { *reinterpret_cast<UnalignedVec*>(p) = v; }
// A hidden weight is held as panels of kPanel output columns, each panel (in, kPanel) row-major, the last one
// narrower when kPanel does not divide the width: a block of rows streams through one panel from start to end.
constexpr int64_t kPanel = 64;  // the same on every CPU: a saved kernel's panels load anywhere
constexpr int kPanelVectors = kPanel / kLanes;
constexpr int kRowPanels = std::max(1, 8 / kPanelVectors);  // panels summed in registers at a time by the row path: 8 vectors
constexpr int64_t kChunkRows = 96;  // rows per chunk of a large batch: 2 x 96 KB of activations at width 256
#if defined(__AVX512F__)
// A block: 6 rows x 4 accumulator vectors + 4 weight vectors, 28 of the 32 registers. Measured on the Xeon VM against
// 12 x 2, 5, 4 and 3 x 8: 11% faster than 12 x 2 on the whole dev set.
constexpr int kBlockRows = 6;
constexpr int kTileVectors = 4;  // a whole panel
constexpr int kTableVectors = 16;  // a table row of 256 floats summed in 16 registers
constexpr int64_t kBatchedRows = 12;  // measured with 12 x 2 blocks on the Xeon VM: blocks won from 12 rows on, tied at 4 and 8
#else
// 16 registers: a block of 2 rows x 4 accumulator vectors + 4 weight vectors, a tile of half a panel. Measured on a
// Zen 3 VM (AVX2) against 3 x 4 (which spills), 3, 4 and 6 x 2: as fast as 6 x 2, the others up to 15% slower.
constexpr int kBlockRows = 2;
constexpr int kTileVectors = 4;
constexpr int kTableVectors = 12;
constexpr int64_t kBatchedRows = 6;  // on the Zen 3 VM: blocks won from 6 rows on, tied at 4, lost 7% at 2
#endif
static_assert(kPanelVectors % kTileVectors == 0, "a panel is a whole number of tiles");

#if defined(__AVX2__) && !defined(__AVX512F__)
// For each 8-lane mask, the positions of its set lanes in increasing order as bytes (the rest zero).
struct SetLanes {
  uint64_t of[256];
  constexpr SetLanes() : of() {
    for (int mask = 0; mask < 256; ++mask)
      for (int lane = 0, n = 0; lane < 8; ++lane)
        if (mask >> lane & 1) of[mask] |= static_cast<uint64_t>(lane) << (8 * n++);
  }
  const uint64_t& operator[](int mask) const { return of[mask]; }
};
constexpr SetLanes kSetLanes;
#endif

// Whether a batch's hidden layers run in blocks of rows (kBatchedRows is the smallest such batch) or row by row.
bool uses_blocks(int64_t rows, int64_t num_layers) { return rows >= kBatchedRows && num_layers > 0; }

float* cache_line_aligned(float* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<float*>((address + 63) & ~static_cast<std::uintptr_t>(63));
}

at::Tensor checked_float_matrix(const at::Tensor& t, int64_t rows, int64_t cols, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == cols, name, " must have shape (", rows, ", ", cols,
              "), got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.device().is_cpu(), name, " must be a float32 CPU tensor");
  return t.detach().contiguous();
}

at::Tensor checked_float_vector(const at::Tensor& t, int64_t size, const char* name) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == size, name, " must have shape (", size, "), got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.device().is_cpu(), name, " must be a float32 CPU tensor");
  return t.detach().contiguous();
}

class FusedMLP {
 public:
  // input_weight: (vocab, hidden), the sparse layout; hidden_weights_t: each (hidden, hidden) as (in, out),
  // the transpose of nn.Linear.weight, so that one active unit adds one contiguous row.
  // With input_scales (vocab,), input_weight is int8: row j of the table is input_scales[j] * input_weight[j, :],
  // the layout on-device runtimes use for embedding tables (4x smaller than float32).
  FusedMLP(const at::Tensor& input_weight, const at::Tensor& input_bias, const std::vector<at::Tensor>& hidden_weights_t,
           const std::vector<at::Tensor>& hidden_biases, const at::Tensor& output_weight, double output_bias,
           const c10::optional<at::Tensor>& input_scales, bool skip_inactive)
      : vocab_(input_weight.dim() == 2 ? input_weight.size(0) : -1),
        hidden_(input_weight.dim() == 2 ? input_weight.size(1) : -1),
        output_bias_(static_cast<float>(output_bias)),
        skip_inactive_(skip_inactive) {
    TORCH_CHECK(vocab_ > 0 && hidden_ > 0, "input_weight must be a non-empty (vocab, hidden) matrix, got ",
                input_weight.sizes());
    TORCH_CHECK(hidden_weights_t.size() == hidden_biases.size(), "got ", hidden_weights_t.size(),
                " hidden weight matrices but ", hidden_biases.size(), " hidden biases");
    if (input_scales.has_value()) {
      TORCH_CHECK(input_weight.scalar_type() == at::kChar && input_weight.device().is_cpu(),
                  "input_weight must be an int8 CPU tensor when input_scales are given");
      input_weight_ = input_weight.detach().contiguous();
      input_scales_ = checked_float_vector(*input_scales, vocab_, "input_scales");
    } else {
      input_weight_ = checked_float_matrix(input_weight, vocab_, hidden_, "input_weight");
    }
    input_bias_ = checked_float_vector(input_bias, hidden_, "input_bias");
    for (size_t l = 0; l < hidden_weights_t.size(); ++l) {
      hidden_weights_.push_back(packed_panels(hidden_weights_t[l]));
      hidden_biases_.push_back(checked_float_vector(hidden_biases[l], hidden_, "hidden bias"));
    }
    output_weight_ = checked_float_vector(output_weight, hidden_, "output_weight");
  }

  // Logits for CSR rows: row r has counts[o:e] at word ids indices[o:e], (o, e) = offsets[r:r+2].
  at::Tensor forward(const at::Tensor& indices, const at::Tensor& offsets, const at::Tensor& counts) const {
    TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kLong && indices.is_contiguous(),
                "indices must be a contiguous 1-D int64 tensor");
    TORCH_CHECK(offsets.dim() == 1 && offsets.scalar_type() == at::kLong && offsets.is_contiguous() && offsets.size(0) >= 1,
                "offsets must be a contiguous 1-D int64 tensor of rows + 1 values");
    TORCH_CHECK(counts.dim() == 1 && counts.scalar_type() == at::kFloat && counts.is_contiguous() &&
                    counts.size(0) == indices.size(0),
                "counts must be a contiguous 1-D float32 tensor as long as indices");
    const int64_t rows = offsets.size(0) - 1;
    const int64_t* ids = indices.data_ptr<int64_t>();
    const int64_t* starts = offsets.data_ptr<int64_t>();
    TORCH_CHECK(starts[0] == 0 && starts[rows] == indices.size(0), "offsets must run from 0 to len(indices)");
    for (int64_t r = 0; r < rows; ++r) TORCH_CHECK(starts[r] <= starts[r + 1], "offsets must not decrease");
    for (int64_t j = 0; j < indices.size(0); ++j)
      TORCH_CHECK(ids[j] >= 0 && ids[j] < vocab_, "word id ", ids[j], " is outside the vocabulary of ", vocab_);

    at::Tensor logits = at::empty({rows}, at::kFloat);
    const float* weights = counts.data_ptr<float>();
    float* out = logits.data_ptr<float>();
    if (uses_blocks(rows, num_layers())) {
      batched_forward(ids, starts, weights, rows, out);
      return logits;
    }
    at::parallel_for(0, rows, kGrainRows, [&](int64_t begin, int64_t end) {
      // The two activation vectors start on cache-line boundaries: malloc's 16-byte alignment would split
      // every vector load and store of them across two lines, at a cost that changed with the heap's state
      // (fused throughput came out 25% slower in some benchmarks than in others).
      const int64_t stride = (hidden_ + kFloatsPerLine - 1) / kFloatsPerLine * kFloatsPerLine;
      std::vector<float> scratch(3 * stride + kFloatsPerLine);
      float* h = cache_line_aligned(scratch.data());
      std::vector<int64_t> active(hidden_);
      for (int64_t r = begin; r < end; ++r)
        out[r] = row_logit(ids + starts[r], weights + starts[r], starts[r + 1] - starts[r], h, h + stride,
                           active.data(), h + 2 * stride);
    });
    return logits;
  }

  // Every tensor the kernel keeps: what its model weighs in memory, and what a user would ship.
  std::vector<at::Tensor> state() const {
    std::vector<at::Tensor> tensors{input_weight_, input_bias_, output_weight_};
    if (input_scales_.defined()) tensors.push_back(input_scales_);
    tensors.insert(tensors.end(), hidden_weights_.begin(), hidden_weights_.end());
    tensors.insert(tensors.end(), hidden_biases_.begin(), hidden_biases_.end());
    return tensors;
  }

  int64_t nbytes() const {
    int64_t total = sizeof(output_bias_);
    for (const auto& t : state()) total += t.numel() * t.element_size();
    return total;
  }

  int64_t vocab_size() const { return vocab_; }
  double output_bias() const { return output_bias_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t num_layers() const { return static_cast<int64_t>(hidden_weights_.size()); }
  bool skip_inactive() const { return skip_inactive_; }

 private:
  // A hidden weight as (in, out), or as state() returns it (already in panels, flat), into the panel layout.
  at::Tensor packed_panels(const at::Tensor& weight_t) const {
    const int64_t H = hidden_;
    if (weight_t.dim() == 1) {
      TORCH_CHECK(weight_t.size(0) == H * H && weight_t.scalar_type() == at::kFloat && weight_t.device().is_cpu(),
                  "a packed hidden weight must be a float32 CPU vector of ", H * H, " values, got ", weight_t.sizes());
      return weight_t.detach().contiguous();
    }
    const at::Tensor matrix = checked_float_matrix(weight_t, H, H, "hidden weight");
    at::Tensor packed = at::empty({H * H}, at::kFloat);
    const float* from = matrix.data_ptr<float>();
    float* to = packed.data_ptr<float>();
    for (int64_t o = 0; o < H; o += kPanel) {
      const int64_t width = std::min(kPanel, H - o);
      for (int64_t k = 0; k < H; ++k) std::memcpy(to + o * H + k * width, from + k * H + o, width * sizeof(float));
    }
    return packed;
  }

  // out = bias + sum_k x[k] * W^T[active[k], :], NP full panels from panel p on, all their vectors in registers.
  template <int NP>
  void sparse_panels(const float* weight, const float* bias, const float* x, const int64_t* active, int64_t n, int64_t p,
                     float* out) const {
    const int64_t H = hidden_;
    Vec acc[kPanelVectors * NP];
    for (int v = 0; v < kPanelVectors * NP; ++v) acc[v] = load(bias + p * kPanel + v * kLanes);
    const float* first = weight + p * kPanel * H;
    for (int64_t k = 0; k < n; ++k) {
      const float* row = first + active[k] * kPanel;
      for (int q = 0; q < NP; ++q)
        for (int v = 0; v < kPanelVectors; ++v) acc[q * kPanelVectors + v] += x[k] * load(row + q * kPanel * H + v * kLanes);
    }
    for (int v = 0; v < kPanelVectors * NP; ++v) store(out + p * kPanel + v * kLanes, acc[v]);
  }

  // One row's hidden layer over its active inputs: x[k] is the value of input active[k].
  void hidden_row(const float* weight, const float* bias, const float* x, const int64_t* active, int64_t n, float* out) const {
    const int64_t H = hidden_, full = H / kPanel;
    int64_t p = 0;
    for (; p + kRowPanels <= full; p += kRowPanels) sparse_panels<kRowPanels>(weight, bias, x, active, n, p, out);
    for (; p < full; ++p) sparse_panels<1>(weight, bias, x, active, n, p, out);
    const int64_t o = full * kPanel, width = H - o;
    if (width == 0) return;
    std::memcpy(out + o, bias + o, width * sizeof(float));
    for (int64_t k = 0; k < n; ++k) {
      const float* row = weight + o * H + active[k] * width;
      for (int64_t c = 0; c < width; ++c) out[o + c] += x[k] * row[c];
    }
  }

  // relu(bias + sum over the inputs k in `inputs` of a[:, k] * W^T[k, :]) for R rows of a (stride H) and one full
  // panel, into c (stride H): a matrix product's micro-kernel, tile by tile, R x kTileVectors vectors of sums in
  // registers, each weight vector loaded once for the R rows. `inputs` are the inputs active in at least one of the rows: the others add only zeros.
  template <int R>
  void dense_panel(const float* a, const int32_t* inputs, int64_t n, const float* panel, const float* bias, float* c) const {
    for (int t = 0; t < kPanelVectors; t += kTileVectors) dense_tile<R>(a, inputs, n, panel, bias, c, t * kLanes);
  }

  // dense_panel's columns [o, o + kTileVectors * kLanes) of the panel: R x kTileVectors sums in registers.
  template <int R>
  void dense_tile(const float* a, const int32_t* inputs, int64_t n, const float* panel, const float* bias, float* c,
                  int64_t o) const {
    const int64_t H = hidden_;
    Vec acc[R][kTileVectors];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kTileVectors; ++v) acc[r][v] = load(bias + o + v * kLanes);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = inputs[i];
      Vec w[kTileVectors];
      for (int v = 0; v < kTileVectors; ++v) w[v] = load(panel + k * kPanel + o + v * kLanes);
      for (int r = 0; r < R; ++r) {
        const float x = a[r * H + k];
        for (int v = 0; v < kTileVectors; ++v) acc[r][v] += x * w[v];
      }
    }
    const Vec zero = {};
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kTileVectors; ++v)
        store(c + r * H + o + v * kLanes, acc[r][v] > zero ? acc[r][v] : zero);
  }

  // The inputs (columns of rows, R rows of stride H) positive in at least one row, in increasing order, into inputs;
  // returns how many. With AVX-512, 16 at a time: a mask per row, compressed into positions in a register (a
  // compressing store to memory is slow on Zen 4); with AVX2, 8 at a time, the mask's set lanes from a table.
  template <int R>
  int64_t used_inputs(const float* rows, int32_t* inputs) const {
    const int64_t H = hidden_;
    if (!skip_inactive_) {
      for (int64_t k = 0; k < H; ++k) inputs[k] = static_cast<int32_t>(k);
      return H;
    }
    int64_t n = 0, k = 0;
#if defined(__AVX512F__)
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; k + kLanes <= H; k += kLanes) {
      __mmask16 used = 0;
      for (int i = 0; i < R; ++i) used |= _mm512_cmp_ps_mask(_mm512_loadu_ps(rows + i * H + k), _mm512_setzero_ps(), _CMP_GT_OQ);
      const __m512i positions = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(k)));
      _mm512_storeu_si512(inputs + n, _mm512_maskz_compress_epi32(used, positions));
      n += __builtin_popcount(used);
    }
#elif defined(__AVX2__)
    for (; k + kLanes <= H; k += kLanes) {
      __m256 any = _mm256_setzero_ps();
      for (int i = 0; i < R; ++i)
        any = _mm256_or_ps(any, _mm256_cmp_ps(_mm256_loadu_ps(rows + i * H + k), _mm256_setzero_ps(), _CMP_GT_OQ));
      const int used = _mm256_movemask_ps(any);
      const __m256i order = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&kSetLanes[used])));
      const __m256i positions = _mm256_add_epi32(order, _mm256_set1_epi32(static_cast<int32_t>(k)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(inputs + n), positions);
      n += __builtin_popcount(used);
    }
#endif
    for (; k < H; ++k) {
      bool used = false;
      for (int i = 0; i < R; ++i) used |= rows[i * H + k] > 0.f;
      inputs[n] = static_cast<int32_t>(k);
      n += used;
    }
    return n;
  }

  // Rows [begin, end) of one hidden layer, R rows at a time (end - begin a multiple of R), panel by panel. A trained
  // model's units are active in few of the rows or none (on SST-2's dev set at the baseline, 6 rows together use
  // 70-81% of a layer's inputs, one row 28-39%): each block skips the inputs none of its rows uses.
  // inputs: scratch for H + kLanes positions (used_inputs writes whole vectors).
  template <int R>
  void dense_rows(const float* weight, const float* bias, const float* a, int64_t begin, int64_t end, float* c,
                  int32_t* inputs) const {
    const int64_t H = hidden_, full = H / kPanel, o = full * kPanel, width = H - o;
    for (int64_t r = begin; r < end; r += R) {
      const float* rows = a + r * H;
      const int64_t n = used_inputs<R>(rows, inputs);
      for (int64_t p = 0; p < full; ++p)
        dense_panel<R>(rows, inputs, n, weight + p * kPanel * H, bias + p * kPanel, c + r * H + p * kPanel);
      if (width == 0) continue;
      for (int i = 0; i < R; ++i) {
        float* out = c + (r + i) * H + o;
        std::memcpy(out, bias + o, width * sizeof(float));
        for (int64_t k = 0; k < H; ++k)
          for (int64_t j = 0; j < width; ++j) out[j] += rows[i * H + k] * weight[o * H + k * width + j];
        relu(out, width);
      }
    }
  }

  // The batch in chunks of up to kChunkRows rows (at least one per thread), each chunk through every layer before
  // the next: its activations stay in the L2 cache (the whole dev set's, 2 x 872 rows x 1 KB at width 256, do not).
  void batched_forward(const int64_t* ids, const int64_t* starts, const float* counts, int64_t rows, float* out) const {
    const int64_t per_thread = (rows + at::get_num_threads() - 1) / at::get_num_threads();
    const int64_t chunk_rows = std::min(kChunkRows / kBlockRows, (per_thread + kBlockRows - 1) / kBlockRows) * kBlockRows;
    const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> buffers(2 * chunk_rows * hidden_ + kFloatsPerLine);
      std::vector<float> x(hidden_);
      std::vector<int64_t> active(hidden_);
      std::vector<int32_t> inputs(hidden_ + kLanes);  // room for a whole vector of positions past the last one
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        const int64_t first = chunk * chunk_rows;
        chunk_forward(ids, starts + first, counts, std::min(chunk_rows, rows - first), cache_line_aligned(buffers.data()),
                      x.data(), active.data(), inputs.data(), out + first);
      }
    });
  }

  // Rows [0, rows) of a chunk (starts: its rows' offsets): the input layer row by row, each hidden layer over blocks
  // of kBlockRows rows, then of 4, the rest by the row path, then the output dot products. a: 2 x rows x H floats.
  void chunk_forward(const int64_t* ids, const int64_t* starts, const float* counts, int64_t rows, float* a, float* x,
                     int64_t* active, int32_t* inputs, float* out) const {
    const int64_t H = hidden_;
    float* c = a + rows * H;
    const int64_t blocked = rows / kBlockRows * kBlockRows;
    const int64_t quads = blocked + (rows - blocked) / 4 * 4;  // the rows blocks of 4 take, after the full blocks
    for (int64_t r = 0; r < rows; ++r) {
      input_row(ids + starts[r], counts + starts[r], starts[r + 1] - starts[r], a + r * H);
      relu(a + r * H, H);
    }
    for (size_t l = 0; l < hidden_weights_.size(); ++l) {
      const float* weight = hidden_weights_[l].data_ptr<float>();
      const float* bias = hidden_biases_[l].data_ptr<float>();
      dense_rows<kBlockRows>(weight, bias, a, 0, blocked, c, inputs);
      dense_rows<4>(weight, bias, a, blocked, quads, c, inputs);
      for (int64_t r = quads; r < rows; ++r) {
        const int64_t n = active_inputs(a + r * H, x, active);
        hidden_row(weight, bias, x, active, n, c + r * H);
        relu(c + r * H, H);
      }
      std::swap(a, c);
    }
    for (int64_t r = 0; r < rows; ++r) out[r] = output_logit(a + r * H);
  }

  // b_out + dot(relu(h), w_out), summed in kLanes partial sums: one running sum is a chain of dependent additions,
  // each waiting for the last (about 0.35 us per example at width 256, the cost of the whole input layer).
  float output_logit(const float* h) const {
    const int64_t H = hidden_;
    const float* w = output_weight_.data_ptr<float>();
    const Vec zero = {};
    Vec sums = {};
    int64_t o = 0;
    for (; o + kLanes <= H; o += kLanes) {
      const Vec x = load(h + o);
      sums += (x > zero ? x : zero) * load(w + o);
    }
    float logit = output_bias_;
    for (int i = 0; i < kLanes; ++i) logit += sums[i];
    for (; o < H; ++o) logit += std::max(h[o], 0.f) * w[o];
    return logit;
  }

  static void relu(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.f);
  }

  // The positive entries of h (relu: only they add a term) as values x and positions active; returns how many.
  // Branch-free: half the units are active, in no pattern a branch predictor could learn.
  // Without skipping, every unit, its relu applied: the same terms and zeros.
  int64_t active_inputs(const float* h, float* x, int64_t* active) const {
    int64_t n = 0;
    for (int64_t i = 0; i < hidden_; ++i) {
      active[n] = i;
      x[n] = std::max(h[i], 0.f);
      n += !skip_inactive_ || h[i] > 0.f;
    }
    return n;
  }

  // out[o:o + V * kLanes] = bias + sum_j factor_j * table[ids[j], o:o + V * kLanes], the sums held in V registers.
  template <int V, typename T, typename Scales>
  void table_rows(const T* table, Scales scales, const float* bias, const int64_t* ids, const float* counts,
                  int64_t nnz, int64_t o, float* out) const {
    const int64_t H = hidden_;
    Vec acc[V];
    for (int v = 0; v < V; ++v) acc[v] = load(bias + o + v * kLanes);
    for (int64_t j = 0; j < nnz; ++j) {
      const T* row = table + ids[j] * H + o;
      const float factor = row_factor(counts, scales, ids, j);
      for (int v = 0; v < V; ++v) acc[v] += factor * load(row + v * kLanes);
    }
    for (int v = 0; v < V; ++v) store(out + o + v * kLanes, acc[v]);
  }

  static float row_factor(const float* counts, const float* scales, const int64_t* ids, int64_t j) {
    return counts[j] * scales[ids[j]];
  }
  static float row_factor(const float* counts, std::nullptr_t, const int64_t*, int64_t j) { return counts[j]; }

  // h = b0 + sum_j counts[j] * W0[ids[j], :], before the relu
  void input_row(const int64_t* ids, const float* counts, int64_t nnz, float* h) const {
    const float* bias = input_bias_.data_ptr<float>();
    if (input_scales_.defined()) {
      input_table(input_weight_.data_ptr<int8_t>(), input_scales_.data_ptr<float>(), bias, ids, counts, nnz, h);
    } else {
      input_table(input_weight_.data_ptr<float>(), nullptr, bias, ids, counts, nnz, h);
    }
  }

  // The input layer over a float table (scales: nullptr) or an int8 one (row j scaled by scales[j]), in register chunks.
  template <typename T, typename Scales>
  void input_table(const T* table, Scales scales, const float* bias, const int64_t* ids, const float* counts,
                   int64_t nnz, float* h) const {
    const int64_t H = hidden_;
    int64_t o = 0;
    for (; o + kTableVectors * kLanes <= H; o += kTableVectors * kLanes)
      table_rows<kTableVectors>(table, scales, bias, ids, counts, nnz, o, h);
    for (; o + 4 * kLanes <= H; o += 4 * kLanes) table_rows<4>(table, scales, bias, ids, counts, nnz, o, h);
    for (; o + kLanes <= H; o += kLanes) table_rows<1>(table, scales, bias, ids, counts, nnz, o, h);
    if (o == H) return;
    std::memcpy(h + o, bias + o, (H - o) * sizeof(float));
    for (int64_t j = 0; j < nnz; ++j)
      for (int64_t i = o; i < H; ++i) h[i] += row_factor(counts, scales, ids, j) * static_cast<float>(table[ids[j] * H + i]);
  }

  float row_logit(const int64_t* ids, const float* counts, int64_t nnz, float* h, float* next, int64_t* active,
                  float* x) const {
    input_row(ids, counts, nnz, h);
    for (size_t l = 0; l < hidden_weights_.size(); ++l) {
      const int64_t n = active_inputs(h, x, active);
      hidden_row(hidden_weights_[l].data_ptr<float>(), hidden_biases_[l].data_ptr<float>(), x, active, n, next);
      std::swap(h, next);
    }
    return output_logit(h);
  }

  int64_t vocab_, hidden_;
  at::Tensor input_weight_, input_scales_, input_bias_, output_weight_;
  std::vector<at::Tensor> hidden_weights_, hidden_biases_;  // the weights in panels (packed_panels)
  float output_bias_;
  bool skip_inactive_;  // read only the hidden inputs the relu left positive
};

// The most multiply-add FLOPs per second a core can do: kPeakChains independent chains of vector FMAs, all in
// registers (more chains than the FMA units x their latency, so that none waits), on every thread. An upper bound
// of any float32 kernel's rate (sst2mlp.measure.limits). Returns the FLOPs done.
constexpr int kPeakChains = 12;
// x * m + a as one fused instruction, whatever the compiler's contraction setting.
inline Vec fused_multiply_add(Vec x, Vec m, Vec a) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vec>(_mm512_fmadd_ps(reinterpret_cast<__m512>(x), reinterpret_cast<__m512>(m), reinterpret_cast<__m512>(a)));
#elif defined(__FMA__)
  return reinterpret_cast<Vec>(_mm256_fmadd_ps(reinterpret_cast<__m256>(x), reinterpret_cast<__m256>(m), reinterpret_cast<__m256>(a)));
#else
  return x * m + a;
#endif
}

int64_t fma_peak(int64_t iterations) {
  const int threads = at::get_num_threads();
  std::vector<float> sinks(threads * kFloatsPerLine);
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      Vec acc[kPeakChains];
      Vec m, a;
      for (int i = 0; i < kLanes; ++i) m[i] = 0.9999f, a[i] = 1e-6f * (i + 1);
      for (int c = 0; c < kPeakChains; ++c) acc[c] = a * static_cast<float>(c + 1);
      for (int64_t i = 0; i < iterations; ++i) {
        for (int c = 0; c < kPeakChains; ++c) acc[c] = fused_multiply_add(acc[c], m, a);
        asm volatile("" : VECTOR_REGISTER(m));  // m may change each iteration: the chains stay multiply-adds, not folded away
      }
      Vec sum = {};
      for (int c = 0; c < kPeakChains; ++c) sum += acc[c];
      sinks[t * kFloatsPerLine] = sum[0];
    }
  });
  volatile float sink = sinks[0];
  (void)sink;
  return static_cast<int64_t>(threads) * iterations * kPeakChains * kLanes * 2;
}

// The same for int8 products as the int8 impls' kernels do them (fbgemm, ONNX Runtime's MLAS): u8 x s8 multiply-adds
// into int32, with VNNI's one instruction where the CPU has it, else AVX2's two-step pmaddubsw + pmaddwd. Returns
// the operations done (2 per multiply-add), or 0 on a CPU with neither.
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
constexpr int64_t kInt8OpsPerIteration = kPeakChains * 64 * 2;  // vpdpbusd: 64 multiply-adds
#elif defined(__AVX2__)
constexpr int64_t kInt8OpsPerIteration = kPeakChains * 32 * 2;  // pmaddubsw + pmaddwd: 32 multiply-adds
#else
constexpr int64_t kInt8OpsPerIteration = 0;
#endif
int64_t int8_peak(int64_t iterations) {
  const int threads = at::get_num_threads();
  std::vector<int32_t> sinks(threads * 16);
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
      __m512i acc[kPeakChains];
      __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
      for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_epi32(c);
      for (int64_t i = 0; i < iterations; ++i) {
        for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
        asm volatile("" : "+v"(a));
      }
      __m512i sum = acc[0];
      for (int c = 1; c < kPeakChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
      sinks[t * 16] = _mm512_reduce_add_epi32(sum);
#elif defined(__AVX2__)
      __m256i acc[kPeakChains];
      __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
      const __m256i ones = _mm256_set1_epi16(1);
      for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm256_set1_epi32(c);
      for (int64_t i = 0; i < iterations; ++i) {
        for (int c = 0; c < kPeakChains; ++c)
          acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
        asm volatile("" : "+x"(a));
      }
      __m256i sum = acc[0];
      for (int c = 1; c < kPeakChains; ++c) sum = _mm256_add_epi32(sum, acc[c]);
      sinks[t * 16] = _mm256_extract_epi32(sum, 0);
#endif
    }
  });
  volatile int32_t sink = sinks[0];
  (void)sink;
  return static_cast<int64_t>(threads) * iterations * kInt8OpsPerIteration;
}

// The fastest this core reads memory: a float32 buffer summed into 8 independent vector accumulators (no chain
// waits on another), split over the threads. An upper bound of the read rate of any kernel, where torch.sum (a
// cascade sum) reads slower than the fused kernel on a buffer in L2. Returns the sum, which the caller keeps.
double read_sum(const at::Tensor& buffer) {
  TORCH_CHECK(buffer.dim() == 1 && buffer.scalar_type() == at::kFloat && buffer.is_contiguous(),
              "buffer must be a contiguous 1-D float32 tensor");
  const float* data = buffer.data_ptr<float>();
  const int64_t n = buffer.numel();
  constexpr int kChains = 8;
  const int threads = at::get_num_threads();
  std::vector<double> partial(threads * kFloatsPerLine, 0.0);
  at::parallel_for(0, n, kChains * kLanes * 1024, [&](int64_t begin, int64_t end) {
    Vec acc[kChains] = {};
    int64_t i = begin;
    for (; i + kChains * kLanes <= end; i += kChains * kLanes)
      for (int c = 0; c < kChains; ++c) acc[c] += load(data + i + c * kLanes);
    Vec sum = {};
    for (int c = 0; c < kChains; ++c) sum += acc[c];
    double total = 0;
    for (int lane = 0; lane < kLanes; ++lane) total += sum[lane];
    for (; i < end; ++i) total += data[i];
    partial[at::get_thread_num() * kFloatsPerLine] += total;
  });
  double total = 0;
  for (double value : partial) total += value;
  return total;
}

}  // namespace

// sparse_rows_adam.cpp: the sparse trainer's Adam step over its input table.
void sparse_rows_adam_(at::Tensor& param, at::Tensor& exp_avg, at::Tensor& exp_avg_sq, const at::Tensor& indices,
                       const at::Tensor& values, double lr, double beta1, double beta2, double eps, int64_t step);

// The floors of a one-call impl (sst2mlp.limits): the same arguments, no work; and only the output's allocation.
int64_t call_floor(const at::Tensor& indices, const at::Tensor& offsets, const at::Tensor& counts) {
  return offsets.size(0) - 1;
}

at::Tensor allocation_floor(const at::Tensor& indices, const at::Tensor& offsets, const at::Tensor& counts) {
  return at::empty({offsets.size(0) - 1}, at::kFloat);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("batched_rows") = kBatchedRows;
  m.attr("vectors") = kVectors;  // the code path compiled: avx512, avx2, neon or generic
  m.attr("floats_per_vector") = kLanes;
  m.def("uses_blocks", &uses_blocks, pybind11::arg("rows"), pybind11::arg("num_layers"));
  m.def("sparse_rows_adam_", &sparse_rows_adam_, pybind11::arg("param"), pybind11::arg("exp_avg"),
        pybind11::arg("exp_avg_sq"), pybind11::arg("indices"), pybind11::arg("values"), pybind11::arg("lr"),
        pybind11::arg("beta1"), pybind11::arg("beta2"), pybind11::arg("eps"), pybind11::arg("step"));
  m.def("fma_peak", &fma_peak, pybind11::arg("iterations"));
  m.def("int8_peak", &int8_peak, pybind11::arg("iterations"));
  m.def("read_sum", &read_sum, pybind11::arg("buffer"));
  m.def("call_floor", &call_floor, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"));
  m.def("allocation_floor", &allocation_floor, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"));
  pybind11::class_<FusedMLP>(m, "FusedMLP")
      .def(pybind11::init<const at::Tensor&, const at::Tensor&, const std::vector<at::Tensor>&,
                          const std::vector<at::Tensor>&, const at::Tensor&, double, const c10::optional<at::Tensor>&, bool>(),
           pybind11::arg("input_weight"), pybind11::arg("input_bias"), pybind11::arg("hidden_weights_t"),
           pybind11::arg("hidden_biases"), pybind11::arg("output_weight"), pybind11::arg("output_bias"),
           pybind11::arg("input_scales") = pybind11::none(), pybind11::arg("skip_inactive") = true)
      .def("state", &FusedMLP::state)
      .def_property_readonly("nbytes", &FusedMLP::nbytes)
      .def("__call__", &FusedMLP::forward, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"))
      .def_property_readonly("vocab_size", &FusedMLP::vocab_size)
      .def_property_readonly("output_bias", &FusedMLP::output_bias)
      .def_property_readonly("hidden_size", &FusedMLP::hidden_size)
      .def_property_readonly("num_layers", &FusedMLP::num_layers)
      .def_property_readonly("skip_inactive", &FusedMLP::skip_inactive);
}
