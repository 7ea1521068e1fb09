#pragma once
// The key blocks this machine has used. A key block is one-time material: its
// FSS keys and masks used for two inputs reveal their difference. So each
// party records, per key set (the nonce of the key files) and party, the next
// block it has not used, in a state directory away from the key files:
// renaming or copying a key file, or deleting anything beside it, does not
// make a block usable again on this machine. A copy on another machine (or
// with another state directory) has a ledger of its own; the handshake still
// skips the blocks the peer has used (docs/private_inference.md).
//
//   <state>/pi-keys/<nonce hex>.<party>.json   {"nonce", "party", "next", "count", "key_file"}
//   <state>/pi-keys/lock                       flock'ed while a block is claimed
#include <cstdint>
#include <string>
#include <vector>

#include "mpc/keys.h"

namespace dr::mpc {

// $DEEPREDUCE_STATE_DIR, else $XDG_STATE_HOME/deepreduce, else
// $HOME/.local/state/deepreduce (an empty variable counts as unset).
// Throws std::runtime_error when none is known.
std::string default_state_dir();

class KeyLedger {
 public:
  // The entry of `keys`' key set and party in `state_dir` ("" = default_state_dir()).
  KeyLedger(const KeyFile& keys, const std::string& state_dir);

  // The first block not used on this machine (0 without an entry).
  uint64_t next_unused() const;
  // Claims block `index` under the lock: refuses one below next_unused() or
  // beyond the file, naming the key file and the block; records index + 1
  // (file and directory synced) before it reads and returns the block.
  std::vector<uint8_t> take(uint64_t index);
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    uint64_t next = 0;
    std::string key_file;  // the file the last block was taken from
  };
  Entry read() const;
  const KeyFile& keys_;
  std::string dir_, path_;
};

}  // namespace dr::mpc
