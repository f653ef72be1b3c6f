// One exact Adam step (torch.optim.Adam's update without weight decay) over a (rows, width) table whose gradient
// is sparse: the uncoalesced (indices, values) of the rows a batch touched, for the sparse trainer
// (training.SparseRowsAdam). Every row is updated, as exact Adam must (an untouched row's moments decay and it
// still moves), but an untouched row's gradient is zero without being stored, zero-filled or read: the step reads
// the parameters and both moments and writes them back, the least any exact Adam step does.
#pragma GCC optimize("fp-contract=off")
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kGrainRows = 256;  // table rows per task when the step is split over threads

struct AdamScalars {
  float lerp_weight, beta2, square_weight, eps, minus_step_size, bias_correction2_sqrt;
};

// The update of one row, operation for operation as torch 2.13's fused CPU Adam computes it (float32, its vectorized
// path, as compiled: the lerp and one product-and-sum of the second moment are fused multiply-adds, checked against
// it element by element on each architecture): the same results bit for bit, so the sparse trainer's losses do not
// change. Nothing else may be contracted (the pragma above). With kHasGrad false the gradient is the zero it stands for.
template <bool kHasGrad>
void update_row(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t width, AdamScalars s) {
  for (int64_t i = 0; i < width; ++i) {
    const float g = kHasGrad ? grad[i] : 0.f;
    exp_avg[i] = std::fma(s.lerp_weight, g - exp_avg[i], exp_avg[i]);  // exp_avg.lerp_(grad, 1 - beta1)
#if defined(__aarch64__)
    // torch's aarch64 build fuses the decayed moment's product instead (checked under qemu, Cortex-A76)
    exp_avg_sq[i] = std::fma(exp_avg_sq[i], s.beta2, s.square_weight * g * g);
#else
    exp_avg_sq[i] = std::fma(s.square_weight * g, g, exp_avg_sq[i] * s.beta2);
#endif
    const float denom = std::sqrt(exp_avg_sq[i]) / s.bias_correction2_sqrt + s.eps;
    param[i] = param[i] + s.minus_step_size * exp_avg[i] / denom;
  }
}

void check_table(const at::Tensor& t, const at::Tensor& param, const char* name) {
  TORCH_CHECK(t.sizes() == param.sizes() && t.scalar_type() == at::kFloat && t.device().is_cpu() && t.is_contiguous(),
              name, " must be a contiguous float32 CPU tensor shaped like the parameter ", param.sizes(), ", got ",
              t.sizes());
}

}  // namespace

void sparse_rows_adam_(at::Tensor& param, at::Tensor& exp_avg, at::Tensor& exp_avg_sq, const at::Tensor& indices,
                       const at::Tensor& values, double lr, double beta1, double beta2, double eps, int64_t step) {
  TORCH_CHECK(param.dim() == 2, "the parameter must be a (rows, width) table, got ", param.sizes());
  check_table(param, param, "the parameter");
  check_table(exp_avg, param, "exp_avg");
  check_table(exp_avg_sq, param, "exp_avg_sq");
  const int64_t rows = param.size(0), width = param.size(1), n = indices.numel();
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kLong && indices.is_contiguous(),
              "indices must be a contiguous 1-D int64 tensor");
  TORCH_CHECK(values.dim() == 2 && values.size(0) == n && values.size(1) == width && values.scalar_type() == at::kFloat &&
                  values.is_contiguous(),
              "values must be a contiguous float32 (", n, ", ", width, ") tensor, got ", values.sizes());
  TORCH_CHECK(step >= 1, "step must count from 1, got ", step);

  // The batch's gradient, one summed row per table row it touched.
  const int64_t* ids = indices.data_ptr<int64_t>();
  const float* grad_values = values.data_ptr<float>();
  std::vector<int64_t> slot(rows, -1);
  std::vector<float> grads;
  for (int64_t j = 0; j < n; ++j) {
    TORCH_CHECK(ids[j] >= 0 && ids[j] < rows, "row ", ids[j], " is outside the table's ", rows, " rows");
    if (slot[ids[j]] < 0) {
      slot[ids[j]] = static_cast<int64_t>(grads.size()) / width;
      grads.resize(grads.size() + width, 0.f);
    }
    float* sum = grads.data() + slot[ids[j]] * width;
    for (int64_t i = 0; i < width; ++i) sum[i] += grad_values[j * width + i];
  }

  // in double, then rounded to float, as torch does
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const AdamScalars s{static_cast<float>(1.0 - beta1), static_cast<float>(beta2), static_cast<float>(1.0 - beta2),
                      static_cast<float>(eps), static_cast<float>(-(lr / bias_correction1)),
                      static_cast<float>(std::sqrt(bias_correction2))};
  float* p = param.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  at::parallel_for(0, rows, kGrainRows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = r * width;
      if (slot[r] >= 0) {
        update_row<true>(p + o, m + o, v + o, grads.data() + slot[r] * width, width, s);
      } else {
        update_row<false>(p + o, m + o, v + o, nullptr, width, s);
      }
    }
  });
}
