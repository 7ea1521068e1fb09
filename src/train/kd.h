#pragma once
// Knowledge distillation (Hinton): CE(s, y) + lambda * T^2 * KL(softmax(t/T) || softmax(s/T)).
#include <torch/torch.h>

namespace dr::train {

struct KdLoss {
  torch::Tensor total, ce, kl;  // kl: the batch-mean KL divergence (before lambda * T^2)
};

KdLoss kd_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
               const torch::Tensor& labels, double T, double lambda);

}  // namespace dr::train
