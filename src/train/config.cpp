#include "train/config.h"

#include <cmath>
#include <stdexcept>

namespace dr::train {

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model},     {"data", data},           {"out", out},
          {"epochs", epochs},   {"batch", batch},         {"lr", lr},
          {"momentum", momentum}, {"nesterov", nesterov}, {"wd", wd},
          {"schedule", schedule}, {"seed", seed},         {"threads", threads},
          {"device", device},   {"limit", limit},         {"workers", workers},
          {"teacher", teacher}, {"kd_T", kd_T},           {"kd_lambda", kd_lambda},
          {"init", init},       {"warmup", warmup},       {"pad", pad},
          {"flip", flip},       {"weight_init", weight_init}, {"zero_init_residual", zero_init_residual}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
    c.model = j.at("model").get<std::string>();
    c.data = j.at("data").get<std::string>();
    c.out = j.value("out", "");
    c.epochs = j.at("epochs").get<int64_t>();
    c.batch = j.at("batch").get<int64_t>();
    c.lr = j.at("lr").get<double>();
    c.momentum = j.value("momentum", c.momentum);
    c.nesterov = j.value("nesterov", c.nesterov);
    c.wd = j.value("wd", c.wd);
    c.schedule = j.value("schedule", c.schedule);
    c.seed = j.value("seed", c.seed);
    c.threads = j.value("threads", c.threads);
    c.device = j.value("device", c.device);
    c.limit = j.value("limit", c.limit);
    c.workers = j.value("workers", c.workers);
    c.teacher = j.value("teacher", c.teacher);
    c.kd_T = j.value("kd_T", c.kd_T);
    c.kd_lambda = j.value("kd_lambda", c.kd_lambda);
    c.init = j.value("init", c.init);
    // Settings added later: a config without them was run with these values.
    c.warmup = j.value("warmup", 0.0);
    c.pad = j.value("pad", 4);
    c.flip = j.value("flip", true);
    c.weight_init = j.value("weight_init", std::string("torch"));
    c.zero_init_residual = j.value("zero_init_residual", false);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("bad training config: ") + e.what());
  }
  return c;
}

void TrainConfig::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (epochs < 1) bad("--epochs must be >= 1 (got " + std::to_string(epochs) + ")");
  if (batch < 1) bad("--batch must be >= 1 (got " + std::to_string(batch) + ")");
  if (!(lr > 0)) bad("--lr must be > 0");
  if (momentum < 0 || momentum >= 1) bad("--momentum must be in [0, 1)");
  if (wd < 0) bad("--wd must be >= 0");
  if (schedule != "step" && schedule != "cosine")
    bad("--schedule '" + schedule + "' is not accepted (accepted: step, cosine)");
  if (warmup < 0 || warmup >= epochs)
    bad("--warmup must be >= 0 and below --epochs (got " + std::to_string(warmup) + ")");
  if (pad < -1) bad("--pad must be >= 0 (0 = no random crop) or -1 (by image size)");
  if (weight_init != "torch" && weight_init != "kaiming")
    bad("--weight-init '" + weight_init + "' is not accepted (accepted: torch, kaiming)");
  if (device != "cpu" && device != "cuda" && device != "auto")
    bad("--device '" + device + "' is not accepted (accepted: cpu, cuda, auto)");
  if (threads < 0) bad("--threads must be >= 0 (0 = every core)");
  if (limit < 0) bad("--limit must be >= 0 (0 = every image)");
  if (workers < 0) bad("--workers must be >= 0");
  if (!(kd_T > 0)) bad("--kd-T must be > 0");
  if (kd_lambda < 0) bad("--kd-lambda must be >= 0");
  if (!init.empty() && init != "teacher") bad("--init '" + init + "' is not accepted (accepted: teacher)");
  if (init == "teacher" && teacher.empty()) bad("--init teacher needs --teacher DIR");
}

double lr_at(const TrainConfig& c, double epoch) {
  const double progress = epoch / static_cast<double>(c.epochs);
  // Linear warm-up scales the schedule's rate during the first epochs.
  const double warm = c.warmup > 0 && epoch < c.warmup ? epoch / c.warmup : 1.0;
  if (c.schedule == "cosine") return warm * 0.5 * c.lr * (1.0 + std::cos(M_PI * progress));
  double lr = c.lr;
  if (progress >= 0.5) lr *= 0.1;
  if (progress >= 0.75) lr *= 0.1;
  return warm * lr;
}

}  // namespace dr::train
