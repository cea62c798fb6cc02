#include "optim/dion2.h"

#include <algorithm>
#include <utility>
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
  int64_t max_numel = 0, max_short = 0, max_slices = 0, max_count = 0, max_group_numel = 0;
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    state_offset_.push_back(total_), total_ += p.numel();
    row_offset_.push_back(total_rows_), total_rows_ += p.rows;
    selections_.push_back({dion2_select_dim(config_.select_dim, p.rows, p.cols), {}});
    const auto [sub_rows, sub_cols] = submatrix_shape(i);
    max_numel = std::max(max_numel, sub_rows * sub_cols);
    max_short = std::max(max_short, std::min(sub_rows, sub_cols));
    max_slices = std::max(max_slices, selected_dim(i) == SliceDim::kRows ? p.rows : p.cols);
  }
  shape_groups_ = shape_groups(matrices_);
  for (const std::vector<size_t>& group : shape_groups_) {
    const auto [sub_rows, sub_cols] = submatrix_shape(group[0]);
    max_count = std::max(max_count, int64_t(group.size()));
    max_group_numel = std::max(max_group_numel, int64_t(group.size()) * sub_rows * sub_cols);
  }
  momentum_ = ops_.allocate(total_);
  if (config_.normalize == "neuron") second_moment_ = ops_.allocate(total_rows_);
  submatrices_ = ops_.allocate(max_group_numel);
  updates_ = ops_.allocate(max_group_numel);
  work_ = std::make_unique<OrthoWorkspace>(ops_, max_numel, max_short, max_count);
  slice_norms_.resize(size_t(max_slices));
}

std::pair<int64_t, int64_t> Dion2::submatrix_shape(size_t i) const {
  const MatrixParam& p = matrices_[i];
  if (selected_dim(i) == SliceDim::kRows) return {selected_count(config_.alpha, p.rows), p.cols};
  return {p.rows, selected_count(config_.alpha, p.cols)};
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

// Matrices of one shape go through line 4 as one batch: lines 2-3 and the
// gather of M[K] for each, one orthonormalization for all, then line 6 for each.
void Dion2::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
                 const ParamsUpdated& updated) {
  const float lr = float(config_.lr * lr_scale), mu = float(config_.mu);
  // The selective decay M[K] *= mu (eq. 2, error feedback); the ablation decays all of M instead.
  const bool selective = config_.decay == "selective";
  const float selected_decay = selective ? mu : 1.0f;
  for (const std::vector<size_t>& group : shape_groups_) {
    const int64_t rows = matrices_[group[0]].rows, cols = matrices_[group[0]].cols, n = rows * cols;
    const SliceDim dim = selected_dim(group[0]);
    const int64_t d = dim == SliceDim::kRows ? rows : cols, k = selected_count(config_.alpha, d);
    const auto [sub_rows, sub_cols] = submatrix_shape(group[0]);
    const int64_t sub_numel = sub_rows * sub_cols;
    for (size_t j = 0; j < group.size(); j++) {
      const MatrixParam& p = matrices_[group[j]];
      const float* g = grads.data() + p.offset;
      float* m = momentum_ + state_offset_[group[j]];
      float* submatrix = submatrices_ + int64_t(j) * sub_numel;
      std::vector<int64_t>& selected = selections_[group[j]].indices;
      if (config_.select == "l1") {  // M += G; K = Select_alpha(M)
        ops_.accumulate_slice_l1_norms(dim, rows, cols, g, m, {slice_norms_.data(), size_t(d)});
        select_top_l1({slice_norms_.data(), size_t(d)}, k, selected);
      } else {
        ops_.axpby(n, 1.0f, g, 1.0f, m);
        // Seeded by the matrix's place in the parameter buffer: the same draw on every rank, whoever owns it.
        select_random(d, k, derive_seed({seed_, 0xd1025e1ec7ull, uint64_t(p.offset), uint64_t(update_count)}), selected);
      }
      if (average_over_ranks_) ops_.gather_slices(dim, rows, cols, m, selected, submatrix);
      else ops_.gather_and_scale_slices(dim, rows, cols, m, selected, submatrix, selected_decay);  // M[K], decayed
    }
    if (average_over_ranks_) {  // compressed sync: M[K] = its mean over the ranks, then decayed
      average_over_ranks_({submatrices_, group.size() * size_t(sub_numel)});
      for (size_t j = 0; j < group.size(); j++)
        ops_.set_slices(dim, rows, cols, momentum_ + state_offset_[group[j]], selections_[group[j]].indices,
                        selected_decay, submatrices_ + int64_t(j) * sub_numel);
    }
    if (!selective)
      for (size_t i : group) ops_.scale(n, mu, momentum_ + state_offset_[i]);

    orthonormalize_batch(ops_, ortho_, sub_rows, sub_cols, int64_t(group.size()), submatrices_, updates_,
                         *work_);  // O = NS(M[K])

    for (size_t j = 0; j < group.size(); j++) {
      const MatrixParam& p = matrices_[group[j]];
      const std::vector<int64_t>& selected = selections_[group[j]].indices;
      float* update = updates_ + int64_t(j) * sub_numel;
      if (second_moment_)
        normalize_neurons(ops_, sub_rows, sub_cols, update,
                          dim == SliceDim::kRows ? std::span<const int64_t>(selected) : std::span<const int64_t>(),
                          second_moment_ + row_offset_[group[j]], float(config_.beta2), float(config_.eps));
      // W *= 1 - lr wd, then W[K] -= lr * scale * O, in one pass.
      ops_.add_to_slices(dim, rows, cols, params.data() + p.offset, selected,
                         weight_decay_factor(lr, config_.weight_decay), -lr * update_scale(config_.scale, rows, cols),
                         update);
      if (updated) updated(p.offset);
    }
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
