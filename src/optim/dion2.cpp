#include "optim/dion2.h"

#include <algorithm>
#include <sstream>

#include "core/rng.h"
#include "optim/normuon.h"
#include "optim/selection.h"

namespace llmdion {

Dion2::Dion2(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops, uint64_t seed,
             std::function<void(std::span<float>)> average_over_ranks)
    : config_(config),
      matrices_(std::move(matrices)),
      ops_(ops),
      seed_(seed),
      average_over_ranks_(std::move(average_over_ranks)),
      ortho_{config.ortho, config.ortho_steps, config.ortho_precision == "bf16"} {
  int64_t max_numel = 0, max_short = 0, max_slices = 0;
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    state_offset_.push_back(total_), total_ += p.numel();
    row_offset_.push_back(total_rows_), total_rows_ += p.rows;
    selections_.push_back({dion2_select_dim(config_.select_dim, p.rows, p.cols), {}});
    const bool rows = selected_dim(i) == SliceDim::kRows;
    const int64_t k = selected_count(config_.alpha, rows ? p.rows : p.cols);
    const int64_t sub_rows = rows ? k : p.rows, sub_cols = rows ? p.cols : k;
    max_numel = std::max(max_numel, sub_rows * sub_cols);
    max_short = std::max(max_short, std::min(sub_rows, sub_cols));
    max_slices = std::max(max_slices, rows ? p.rows : p.cols);
  }
  momentum_ = ops_.allocate(total_);
  if (config_.normalize == "neuron") second_moment_ = ops_.allocate(total_rows_);
  submatrix_ = ops_.allocate(max_numel);
  update_ = ops_.allocate(max_numel);
  work_ = std::make_unique<OrthoWorkspace>(ops_, max_numel, max_short);
  slice_norms_.resize(size_t(max_slices));
}

SliceDim dion2_select_dim(const std::string& select_dim, int64_t rows, int64_t cols) {
  if (select_dim == "rows") return SliceDim::kRows;
  if (select_dim == "cols") return SliceDim::kCols;
  return rows <= cols ? SliceDim::kRows : SliceDim::kCols;  // shorter (rows on a tie), as in the paper
}

const SliceSelection* Dion2::changed_slices(int64_t offset) const {
  for (size_t i = 0; i < matrices_.size(); i++)
    if (matrices_[i].offset == offset) return &selections_[i];
  return nullptr;
}

void Dion2::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count) {
  const float lr = float(config_.lr * lr_scale), mu = float(config_.mu);
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    const int64_t n = p.numel();
    float* w = params.data() + p.offset;
    const float* g = grads.data() + p.offset;
    float* m = momentum_ + state_offset_[i];
    const SliceDim dim = selected_dim(i);
    const int64_t d = dim == SliceDim::kRows ? p.rows : p.cols;
    const int64_t k = selected_count(config_.alpha, d);
    std::vector<int64_t>& selected = selections_[i].indices;

    ops_.axpby(n, 1.0f, g, 1.0f, m);  // M += G
    if (config_.select == "l1") {     // K = Select_alpha(M)
      ops_.slice_l1_norms(dim, p.rows, p.cols, m, {slice_norms_.data(), size_t(d)});
      select_top_l1({slice_norms_.data(), size_t(d)}, k, selected);
    } else {
      // Seeded by the matrix's place in the parameter buffer: the same draw on every rank, whoever owns it.
      select_random(d, k, derive_seed({seed_, 0xd1025e1ec7ull, uint64_t(p.offset), uint64_t(update_count)}), selected);
    }
    ops_.gather_slices(dim, p.rows, p.cols, m, selected, submatrix_);
    const int64_t sub_rows = dim == SliceDim::kRows ? k : p.rows, sub_cols = dim == SliceDim::kRows ? p.cols : k;
    if (average_over_ranks_) {  // compressed sync: M[K] = its mean over the ranks
      average_over_ranks_({submatrix_, size_t(sub_rows * sub_cols)});
      ops_.scale_slices(dim, p.rows, p.cols, m, selected, 0.0f);
      ops_.add_to_slices(dim, p.rows, p.cols, m, selected, 1.0f, submatrix_);
    }
    orthonormalize(ops_, ortho_, sub_rows, sub_cols, submatrix_, update_, *work_);  // O = NS(M[K])

    // The selective decay M[K] *= mu (eq. 2, error feedback); the ablation decays all of M.
    if (config_.decay == "selective") ops_.scale_slices(dim, p.rows, p.cols, m, selected, mu);
    else ops_.scale(n, mu, m);

    if (second_moment_)
      normalize_neurons(ops_, sub_rows, sub_cols, update_,
                        dim == SliceDim::kRows ? std::span<const int64_t>(selected) : std::span<const int64_t>(),
                        second_moment_ + row_offset_[i], float(config_.beta2), float(config_.eps));
    ops_.scale(n, weight_decay_factor(lr, config_.weight_decay), w);
    ops_.add_to_slices(dim, p.rows, p.cols, w, selected, -lr * update_scale(config_.scale, p.rows, p.cols), update_);
  }
}

std::vector<OptimizerState> Dion2::state() {
  return momentum_state("dion2", momentum_, total_, second_moment_, total_rows_);
}

std::string Dion2::describe() const {
  std::ostringstream out;
  out << "matrices: Dion2" << (second_moment_ ? " + NorMuon" : "") << " over " << matrices_.size() << " matrices ("
      << total_ << " values), alpha " << config_.alpha << ", " << config_.select << " selection of " << config_.select_dim
      << " slices, " << config_.decay << " decay mu " << config_.mu << ", lr " << config_.lr << ", " << config_.ortho
      << " x " << config_.ortho_steps << (ortho_.bf16_products ? " (bf16 products)" : "") << ", scale " << config_.scale << ", weight decay " << config_.weight_decay;
  return out.str();
}

}  // namespace llmdion
