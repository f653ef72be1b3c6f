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
// Only the headers it uses, not <torch/extension.h>: that one (all of libtorch's C++ API) doubles the build's
// CPU time, 36 s against 18 s on the 2-core AMD VM, which every fresh machine and CI run pays.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kGrainRows = 16;  // rows per task when a batch is split over threads
constexpr int64_t kFloatsPerLine = 16;  // a 64-byte cache line
constexpr int kLanes = 16;  // floats per vector: one AVX-512 register (two AVX2 registers elsewhere)
constexpr int kVectors = 8;  // vectors of outputs summed in registers at a time
constexpr int64_t kChunk = kLanes * kVectors;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

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
           const c10::optional<at::Tensor>& input_scales)
      : vocab_(input_weight.dim() == 2 ? input_weight.size(0) : -1),
        hidden_(input_weight.dim() == 2 ? input_weight.size(1) : -1),
        output_bias_(static_cast<float>(output_bias)) {
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
      hidden_weights_t_.push_back(checked_float_matrix(hidden_weights_t[l], hidden_, hidden_, "hidden weight"));
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
    tensors.insert(tensors.end(), hidden_weights_t_.begin(), hidden_weights_t_.end());
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
  int64_t num_layers() const { return static_cast<int64_t>(hidden_weights_t_.size()); }

 private:
  // out[o] = bias[o] + sum_k x[k] * rows[k][o] for o < H, kChunk outputs at a time held in registers: each row is
  // loaded once per chunk and nothing is stored until the chunk's sum is done (the same terms in the same order as
  // a loop that adds one row at a time into out).
  template <typename RowOf>
  void accumulate_rows(const float* bias, const float* x, int64_t n, RowOf row_of, float* out) const {
    const int64_t H = hidden_;
    int64_t o = 0;
    for (; o + kChunk <= H; o += kChunk) {
      Vec acc[kVectors];
      for (int v = 0; v < kVectors; ++v) std::memcpy(&acc[v], bias + o + v * kLanes, sizeof(Vec));
      for (int64_t k = 0; k < n; ++k) {
        const float* row = row_of(k) + o;
        for (int v = 0; v < kVectors; ++v) {
          Vec w;
          std::memcpy(&w, row + v * kLanes, sizeof(Vec));
          acc[v] += x[k] * w;
        }
      }
      for (int v = 0; v < kVectors; ++v) std::memcpy(out + o + v * kLanes, &acc[v], sizeof(Vec));
    }
    if (o < H) {
      std::memcpy(out + o, bias + o, (H - o) * sizeof(float));
      for (int64_t k = 0; k < n; ++k) {
        const float* row = row_of(k);
        for (int64_t i = o; i < H; ++i) out[i] += x[k] * row[i];
      }
    }
  }

  // h = b0 + sum_j counts[j] * W0[ids[j], :], before the relu
  void input_row(const int64_t* ids, const float* counts, int64_t nnz, float* h) const {
    const int64_t H = hidden_;
    if (input_scales_.defined()) {
      std::memcpy(h, input_bias_.data_ptr<float>(), H * sizeof(float));
      const int8_t* table = input_weight_.data_ptr<int8_t>();
      const float* scales = input_scales_.data_ptr<float>();
      for (int64_t j = 0; j < nnz; ++j) {
        const float factor = counts[j] * scales[ids[j]];
        const int8_t* row = table + ids[j] * H;
        for (int64_t o = 0; o < H; ++o) h[o] += factor * static_cast<float>(row[o]);
      }
      return;
    }
    const float* table = input_weight_.data_ptr<float>();
    accumulate_rows(input_bias_.data_ptr<float>(), counts, nnz, [&](int64_t j) { return table + ids[j] * H; }, h);
  }

  float row_logit(const int64_t* ids, const float* counts, int64_t nnz, float* h, float* next, int64_t* active,
                  float* x) const {
    const int64_t H = hidden_;
    input_row(ids, counts, nnz, h);
    for (size_t l = 0; l < hidden_weights_t_.size(); ++l) {
      // relu: only the positive inputs add a term. Branch-free: half the units are active, in no pattern a branch
      // predictor could learn.
      int64_t num_active = 0;
      for (int64_t i = 0; i < H; ++i) {
        active[num_active] = i;
        x[num_active] = h[i];
        num_active += h[i] > 0.f;
      }
      const float* weight_t = hidden_weights_t_[l].data_ptr<float>();
      accumulate_rows(hidden_biases_[l].data_ptr<float>(), x, num_active, [&](int64_t k) { return weight_t + active[k] * H; },
                      next);
      std::swap(h, next);
    }
    const float* w = output_weight_.data_ptr<float>();
    float logit = output_bias_;
    for (int64_t o = 0; o < H; ++o) logit += std::max(h[o], 0.f) * w[o];
    return logit;
  }

  int64_t vocab_, hidden_;
  at::Tensor input_weight_, input_scales_, input_bias_, output_weight_;
  std::vector<at::Tensor> hidden_weights_t_, hidden_biases_;
  float output_bias_;
};

}  // namespace

// The floors of a one-call impl (sst2mlp.limits): the same arguments, no work; and only the output's allocation.
int64_t call_floor(const at::Tensor& indices, const at::Tensor& offsets, const at::Tensor& counts) {
  return offsets.size(0) - 1;
}

at::Tensor allocation_floor(const at::Tensor& indices, const at::Tensor& offsets, const at::Tensor& counts) {
  return at::empty({offsets.size(0) - 1}, at::kFloat);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("call_floor", &call_floor, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"));
  m.def("allocation_floor", &allocation_floor, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"));
  pybind11::class_<FusedMLP>(m, "FusedMLP")
      .def(pybind11::init<const at::Tensor&, const at::Tensor&, const std::vector<at::Tensor>&,
                          const std::vector<at::Tensor>&, const at::Tensor&, double, const c10::optional<at::Tensor>&>(),
           pybind11::arg("input_weight"), pybind11::arg("input_bias"), pybind11::arg("hidden_weights_t"),
           pybind11::arg("hidden_biases"), pybind11::arg("output_weight"), pybind11::arg("output_bias"),
           pybind11::arg("input_scales") = pybind11::none())
      .def("state", &FusedMLP::state)
      .def_property_readonly("nbytes", &FusedMLP::nbytes)
      .def("__call__", &FusedMLP::forward, pybind11::arg("indices"), pybind11::arg("offsets"), pybind11::arg("counts"))
      .def_property_readonly("vocab_size", &FusedMLP::vocab_size)
      .def_property_readonly("output_bias", &FusedMLP::output_bias)
      .def_property_readonly("hidden_size", &FusedMLP::hidden_size)
      .def_property_readonly("num_layers", &FusedMLP::num_layers);
}
