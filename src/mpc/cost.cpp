#include "mpc/cost.h"

#include <algorithm>
#include <stdexcept>

#include "mpc/gate.h"
#include "mpc/keys.h"
#include "mpc/transport.h"

namespace dr::mpc {

namespace {

void add_gate(ExpectedCost& c, const Step& s, const StepCost& sc) {
  const Gate& g = gate_of(s);
  const std::string name = g.name();
  auto it = std::find_if(c.gates.begin(), c.gates.end(), [&](const GateTotal& t) { return t.gate == name; });
  if (it == c.gates.end()) it = c.gates.insert(c.gates.end(), GateTotal{name});
  it->steps += 1;
  it->elements += sc.elements;
  it->bytes = arch::count_add(it->bytes, sc.bytes, "online bytes");
  it->rounds += sc.rounds;
  const int64_t keys = arch::count_mul(static_cast<int64_t>(g.key_bytes()), sc.elements, "key bytes");
  it->key_bytes = arch::count_add(it->key_bytes, keys, "key bytes");
  const int64_t setup = arch::count_mul(8, g.setup_words(s), "setup bytes");
  it->setup_bytes = arch::count_add(it->setup_bytes, setup, "setup bytes");
  if (name == "relu") {  // the network's ReLU count, which every report shows
    c.relu_layers = it->steps;
    c.live_relus = it->elements;
    c.relu_bytes = it->bytes;
  }
}

}  // namespace

ExpectedCost expected_cost(const Program& program, int64_t batch) {
  if (batch < 1) throw std::invalid_argument("expected_cost: a batch of " + std::to_string(batch) + " images");
  ExpectedCost c;
  for (const uint64_t b : step_key_bytes(program, Party::Server))
    c.server_key_bytes = arch::count_add(c.server_key_bytes, static_cast<int64_t>(b), "key bytes");
  for (const uint64_t b : step_key_bytes(program, Party::Client))
    c.client_key_bytes = arch::count_add(c.client_key_bytes, static_cast<int64_t>(b), "key bytes");
  bool opened_before = false;  // the last step opened this one's shares with its own
  for (const Step& s : program.steps) {
    StepCost sc{s.name, kind_name(s), 0, 0, 0};
    switch (s.kind) {
      case StepKind::Input:  // one message, client -> server
        sc.elements = arch::count_mul(batch, program.input_numel(), "input elements");
        sc.bytes = arch::count_mul(8, sc.elements, "online bytes");
        sc.rounds = 1;
        c.input_elements = sc.elements;
        c.input_bytes = sc.bytes;
        c.client_sent += sc.bytes;
        c.messages += 1;
        break;
      case StepKind::Linear:  // 8 bytes per output element each way
        sc.elements = arch::count_mul(batch, s.geom.out_numel(), "linear outputs");
        sc.bytes = arch::count_mul(16, sc.elements, "online bytes");
        sc.rounds = 1;
        c.linear_layers += 1;
        c.linear_outputs += sc.elements;
        c.linear_bytes = arch::count_add(c.linear_bytes, sc.bytes, "online bytes");
        break;
      case StepKind::Gate: {  // the gate's words per live element, each way
        const Gate& g = gate_of(s);
        sc.elements = arch::count_mul(batch, s.live_count, "gate elements");
        sc.bytes = arch::count_mul(16, g.words_sent(sc.elements), "online bytes");
        sc.rounds = opened_before ? 0 : g.rounds();
        add_gate(c, s, sc);
        break;
      }
      default: break;  // local
    }
    if (s.kind == StepKind::Linear || s.kind == StepKind::Gate) {  // both send the same each round
      c.client_sent += sc.bytes / 2;
      c.server_sent += sc.bytes / 2;
      c.messages += 2 * sc.rounds;
    }
    c.online_bytes = arch::count_add(c.online_bytes, sc.bytes, "online bytes");  // checked: huge inputs
    c.rounds += sc.rounds;
    c.steps.push_back(sc);
    opened_before = s.kind == StepKind::Gate && s.opens_with_next;
  }
  c.framing_bytes = c.messages * static_cast<int64_t>(kFrameHeaderBytes);
  return c;
}

ExpectedCost expected_cost(const Architecture& arch) {
  return expected_cost(compile_program(arch, ProgramDetail::Counts));
}

ExpectedCost expected_cost(const arch::Network& net) { return expected_cost(compile_program(net, ProgramDetail::Counts)); }

nlohmann::json to_json(const ExpectedCost& c) {
  nlohmann::json steps = nlohmann::json::array();
  for (const StepCost& s : c.steps)
    if (s.rounds > 0)
      steps.push_back({{"name", s.name}, {"kind", s.kind}, {"elements", s.elements}, {"bytes", s.bytes},
                       {"rounds", s.rounds}});
  nlohmann::json gates = nlohmann::json::array();
  for (const GateTotal& g : c.gates)
    gates.push_back({{"gate", g.gate}, {"steps", g.steps}, {"elements", g.elements}, {"bytes", g.bytes},
                     {"rounds", g.rounds}, {"key_bytes", g.key_bytes}, {"setup_bytes", g.setup_bytes}});
  return {{"online_bytes", c.online_bytes},
          {"rounds", c.rounds},
          {"input_bytes", c.input_bytes},
          {"linear_bytes", c.linear_bytes},
          {"relu_bytes", c.relu_bytes},
          {"client_sent", c.client_sent},
          {"server_sent", c.server_sent},
          {"messages", c.messages},
          {"framing_bytes", c.framing_bytes},
          {"key_bytes", {{"server", c.server_key_bytes}, {"client", c.client_key_bytes}}},
          {"input_elements", c.input_elements},
          {"linear_layers", c.linear_layers},
          {"linear_outputs", c.linear_outputs},
          {"relu_layers", c.relu_layers},
          {"live_relus", c.live_relus},
          {"gates", gates},
          {"steps", steps}};
}

}  // namespace dr::mpc
