#pragma once
/// The audit log: every decision the kernel takes — admissions and rejections, gated calls,
/// consent requests and answers, policy changes — as an append-only chain of entries in the event
/// store. Each entry's MAC is HMAC-SHA-256 over the previous entry's MAC and the entry's canonical
/// text, under a key kept outside the database; the number of entries and the last MAC are also
/// written outside the database (the head file) at each commit. So an edited, inserted, reordered
/// or deleted entry — even a deleted tail, even a chain recomputed without the key — is found by
/// `verify_audit`. Format: docs/audit.md.
#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/store/event_store.hpp"

namespace choir::kernel {

/// What happened, as the kernel records it. Every field but `kind` may be empty.
struct audit_event {
  std::string kind;  ///< `admission`, `call`, `consent.request`, `consent.answer`, `policy.change`, …
  std::string tenant;
  std::string user;
  std::string agent;
  std::string run_id;
  std::optional<std::int64_t> step;
  std::string capability;           ///< what was asked for
  std::string argument;             ///< the capability's argument (a path, a URL), if any
  std::string decision;             ///< `allow` or `deny` (empty for events that decide nothing)
  std::string reason;               ///< why, for a denial
  value details = value::object();  ///< anything else, already redacted
};

/// The 32-byte MAC key.
class audit_key {
 public:
  static constexpr std::size_t size = 32;
  /// Reads the key file (64 hex digits). If it does not exist and `create` is set, writes a new
  /// random key there (mode 0600, its folder created). A key file readable by others is refused.
  [[nodiscard]] static result<audit_key> load(const std::string& path, bool create);
  [[nodiscard]] static audit_key from_bytes(const std::array<unsigned char, size>& bytes);

  /// HMAC-SHA-256(key, previous ‖ entry) as 64 lowercase hex digits. `previous` is the previous
  /// entry's MAC in hex (empty for the first entry: 32 zero bytes are used).
  [[nodiscard]] std::string chain(std::string_view previous, std::string_view entry) const;
  /// The same over raw bytes: `out` = HMAC-SHA-256(key, previous ‖ entry).
  void mac(std::span<const unsigned char, 32> previous, std::string_view entry, std::span<unsigned char, 32> out) const;

 private:
  audit_key() = default;
  /// SHA-256 states after absorbing the key XOR ipad, and XOR opad (HMAC's padded keys).
  std::array<std::uint64_t, 16> inner_{};
  std::array<std::uint64_t, 16> outer_{};
};

/// Where the head file is and what it says: `choir-audit-head 1 <entries> <last MAC>`.
struct audit_head {
  std::int64_t entries = 0;
  std::string mac;  ///< empty when `entries` is 0
};
[[nodiscard]] result<std::optional<audit_head>> read_audit_head(const std::string& path);

struct audit_options {
  std::string key_file;   ///< default: `<store folder>/audit.key`
  std::string head_file;  ///< default: `<store folder>/audit.head`
  const clock* time = &system_clock();
};

/// The canonical text of an entry (what its MAC covers): a JSON object with sorted keys.
[[nodiscard]] std::string canonical_entry(std::int64_t seq, std::int64_t time_ms, const audit_event& e);

/// Appends to the chain. Thread-safe: concurrent appenders share transactions (group commit), and
/// each `append` returns only once its entry has committed and the head file says so.
class audit_log {
 public:
  /// Opens the chain of `store`. The key is created with the first entry; a store that has entries
  /// but no key, or whose last entries do not match the head file (the tail was deleted or
  /// rewritten), is refused: nothing is appended to a log that no longer verifies.
  [[nodiscard]] static result<std::unique_ptr<audit_log>> open(std::shared_ptr<store::event_store> store,
                                                               audit_options options);
  ~audit_log();
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;

  /// Appends one entry; returns its sequence number once it is durable.
  [[nodiscard]] result<std::int64_t> append(const audit_event& event);
  /// Appends several entries in one transaction; returns the last one's sequence number.
  [[nodiscard]] result<std::int64_t> append(std::span<const audit_event> events);

  /// Entries committed so far, and transactions they took.
  [[nodiscard]] std::int64_t entries() const;
  [[nodiscard]] std::int64_t transactions() const;
  /// Entries this process committed, by kind and decision (`call`/`allow`, `call`/`deny`,
  /// `consent`/`ask`, `effect`/`ok`, …): the gate's decisions, for `/metrics`.
  [[nodiscard]] std::map<std::pair<std::string, std::string>, std::uint64_t> decisions() const;

 private:
  struct pending;
  audit_log(std::shared_ptr<store::event_store> store, audit_options options, audit_key key, audit_head head);
  result<void> commit(pending& batch);
  result<void> write_head(const audit_head& head);

  std::shared_ptr<store::event_store> store_;
  audit_options options_;
  audit_key key_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::shared_ptr<pending> open_;  ///< the batch appenders join until a committer takes it
  bool flushing_ = false;          ///< a committer is writing a batch (only it touches the store)
  audit_head head_;
  int head_fd_ = -1;  ///< the head file, open once
  std::int64_t transactions_ = 0;
  std::map<std::pair<std::string, std::string>, std::uint64_t> decisions_;
};

/// What `verify_audit` found.
struct audit_report {
  std::int64_t entries = 0;   ///< entries read
  std::int64_t verified = 0;  ///< entries whose chain checked out, from the first
  /// The first problem, located: `entry 17: …` (empty if none).
  std::string problem;
  std::optional<std::int64_t> problem_at;
  /// Facts that are not tampering (entries committed after the head file was last written, by a
  /// process that died before writing it).
  std::vector<std::string> notes;
  [[nodiscard]] bool ok() const { return problem.empty(); }
  [[nodiscard]] value to_json() const;
};

/// Checks the whole chain: every entry's sequence number and MAC in order, and the last entries
/// against the head file. Errors only when the log cannot be read at all (no key: `no_audit_key`).
[[nodiscard]] result<audit_report> verify_audit(store::event_store& store, const audit_options& options);

/// SHA-256 of `text` as 64 lowercase hex digits (what an audit entry records of a large body).
[[nodiscard]] std::string sha256_hex(std::string_view text);

/// The redaction every stored argument goes through: of an object, the keys named in `log_fields`
/// keep their values and every other value becomes `"[redacted]"` (keys stay, so an audit reader
/// sees what was passed without what it said); anything else is redacted whole unless
/// `log_fields` holds `*`.
[[nodiscard]] value redact(const value& arguments, std::span<const std::string> log_fields);

}  // namespace choir::kernel
