#include "train/kd.h"

namespace dr::train {

KdLoss kd_loss(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& y, double T,
               double lambda) {
  namespace F = torch::nn::functional;
  KdLoss out;
  out.ce = F::cross_entropy(s, y);
  const auto log_p_s = F::log_softmax(s / T, F::LogSoftmaxFuncOptions(1));
  const auto log_p_t = F::log_softmax(t.detach() / T, F::LogSoftmaxFuncOptions(1));
  // KL(p_t || p_s) = sum p_t (log p_t - log p_s), averaged over the batch.
  out.kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean();
  out.total = out.ce + lambda * T * T * out.kl;
  return out;
}

}  // namespace dr::train
