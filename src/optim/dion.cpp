#include "optim/dion.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace llmdion {
namespace {

// n standard normal values (Box-Muller on splitmix64).
std::vector<float> seeded_normal(int64_t n, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (double(rng.next() >> 11) + 1.0) * 0x1.0p-53, u2 = double(rng.next() >> 11) * 0x1.0p-53;
    const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * M_PI * u2;
    out[i] = float(radius * std::cos(angle));
    if (i + 1 < n) out[i + 1] = float(radius * std::sin(angle));
  }
  return out;
}

}  // namespace

Dion::Dion(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops, uint64_t seed)
    : config_(config), matrices_(std::move(matrices)), ops_(ops) {
  int64_t max_p = 0, max_r = 0, max_rank = 0;
  for (const MatrixParam& p : matrices_) {
    const int64_t r = dion_rank(config_.rank_frac, p.rows, p.cols);
    rank_.push_back(r);
    momentum_offset_.push_back(momentum_total_), momentum_total_ += p.numel();
    q_offset_.push_back(q_total_), q_total_ += p.cols * r;
    max_p = std::max(max_p, p.rows * r), max_r = std::max(max_r, p.cols * r), max_rank = std::max(max_rank, r);
  }
  momentum_ = ops_.allocate(momentum_total_);
  q_ = ops_.allocate(q_total_);
  for (size_t i = 0; i < matrices_.size(); i++) {
    const std::vector<float> q0 =
        seeded_normal(matrices_[i].cols * rank_[i], derive_seed({seed, 0xd10e0ull, uint64_t(matrices_[i].offset)}));
    ops_.copy_from_host(q0, q_ + q_offset_[i]);
  }
  p_ = ops_.allocate(max_p);
  r_ = ops_.allocate(max_r);
  gram_ = ops_.allocate(max_rank * max_rank);
}

void Dion::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t,
                const ParamsUpdated& updated) {
  const float lr = float(config_.lr * lr_scale), mu = float(config_.mu);
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    const int64_t m = p.rows, n = p.cols, r = rank_[i];
    float* w = params.data() + p.offset;
    const float* g = grads.data() + p.offset;
    float* momentum = momentum_ + momentum_offset_[i];
    float* q = q_ + q_offset_[i];

    ops_.axpby(m * n, 1.0f, g, 1.0f, momentum);                      // M += G
    ops_.gemm(false, false, m, r, n, 1.0f, momentum, q, 0.0f, p_);   // P = M Q
    if (!ops_.cholesky_qr(m, r, p_, gram_)) {                         // P = orthonormalize(P)
      qr_fallbacks_++;
      ops_.gemm(false, false, m, r, n, 1.0f, momentum, q, 0.0f, p_);
      ops_.householder_qr(m, r, p_);
    }
    ops_.gemm(true, false, n, r, m, 1.0f, momentum, p_, 0.0f, r_);   // R = M^T P
    ops_.gemm(false, true, m, n, r, -(1.0f - mu), p_, r_, 1.0f, momentum);  // M -= (1 - mu) P R^T
    ops_.copy(n * r, r_, q);                                          // Q = column_normalize(R)
    ops_.normalize_columns(n, r, q, float(config_.eps));
    ops_.scale(m * n, weight_decay_factor(lr, config_.weight_decay), w);
    ops_.gemm(false, true, m, n, r, -lr * update_scale(config_.scale, m, n), p_, q, 1.0f, w);  // W -= lr s P Q^T
    if (updated) updated(p.offset);
  }
}

std::vector<OptimizerState> Dion::state() {
  return {{"dion.momentum", {momentum_, size_t(momentum_total_)}}, {"dion.Q", {q_, size_t(q_total_)}}};
}

std::string Dion::describe() const {
  std::ostringstream out;
  out << "matrices: Dion over " << matrices_.size() << " matrices (" << momentum_total_ << " values), rank_frac "
      << config_.rank_frac << ", mu " << config_.mu << ", lr " << config_.lr << ", scale " << config_.scale
      << ", weight decay " << config_.weight_decay;
  return out.str();
}

}  // namespace llmdion
