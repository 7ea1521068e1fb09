#pragma once
// The two online parties of a private inference (docs/private_inference.md).
//
//   serve():      the server holds the weights and server.key; it listens,
//                 accepts one client session, runs as many inferences as the
//                 client asks for (up to the keys left) and returns.
//   run_client(): the client holds the images and client.key; it connects,
//                 runs `count` images and returns the logits with the
//                 measurements of both parties.
//
// Session: hello both ways (key format, model hash, l, f, nonce, inferences,
// first key block unused on this party's machine, from its KeyLedger; any
// mismatch is refused by both), then the server
// sends the input normalisation (public preprocessing) and W^ = W + A of every
// linear layer (setup traffic). Per inference: each party takes its next key
// block and does the input-independent work (preprocessing), the server says
// "ready", then the online protocol runs; only that is the online cost.
// At the end the server sends its per-layer records to the client.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mpc/keys.h"
#include "mpc/model.h"
#include "mpc/report.h"
#include "mpc/transport.h"

namespace dr::mpc {

struct ServerOptions {
  std::string key_path;                  // server.key
  std::shared_ptr<KeyFile> keys;         // it opened already (a named pipe opens once), else key_path is opened
  std::string bind_address = "127.0.0.1";  // "0.0.0.0": every interface
  int port = 0;                          // 0: any free port, reported through on_listening
  double timeout_s = 60;                 // every wait for the client during the session
  double accept_timeout_s = 60;          // waiting for the client to connect
  int threads = 1;                       // linear kernels and ReLU evaluation
  std::string state_dir;                 // the key ledger's (ledger.h); "" = default_state_dir()
  std::function<void(int port)> on_listening;  // called once the socket listens
};

struct ClientImage {
  std::vector<float> pixels;  // C x H x W, raw values in [0, 1] (normalised with the server's mean/std)
  int64_t label = -1;
};

struct ClientOptions {
  std::string key_path;  // client.key
  std::shared_ptr<KeyFile> keys;  // it opened already (a named pipe opens once), else key_path is opened
  std::string host = "127.0.0.1";
  int port = 0;
  int64_t count = 1;     // images to run
  int64_t batch = 1;     // images per batch: each message carries the batch's shares, so a batch
                         // takes one image's rounds (the last batch may be smaller)
  double timeout_s = 60; // connect (with retries) and every wait for the server
  int threads = 1;
  std::string state_dir;  // the key ledger's (ledger.h); "" = default_state_dir()
  std::function<ClientImage(int64_t index)> image;  // image `index` of the session (0-based)
};

// Both print nothing; errors are std::runtime_error (std::invalid_argument for
// bad options) with a message naming the party and what went wrong.
ServerReport serve(const FloatModel& model, const ServerOptions& options);
ClientReport run_client(const ClientOptions& options);

// The same sessions over an already connected transport (tests, socketpairs).
ServerReport serve_session(Transport& transport, const FloatModel& model, const ServerOptions& options);
ClientReport client_session(Transport& transport, const ClientOptions& options);

}  // namespace dr::mpc
