// The audit chain (docs/audit.md).
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init & co: a reusable midstate makes HMAC 3× cheaper
#include "choir/kernel/audit.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "choir/core/json_text.hpp"
#include "choir/kernel/contract.hpp"

namespace choir::kernel {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

std::string to_hex(const unsigned char* p, std::size_t n) {
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = hex_digits[p[i] >> 4];
    out[2 * i + 1] = hex_digits[p[i] & 0xF];
  }
  return out;
}

/// Lowercase hex digits' values; -1 for any other byte.
constexpr std::array<std::int8_t, 256> hex_values = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<std::int8_t>(i);
  for (int i = 0; i < 6; ++i) t['a' + i] = static_cast<std::int8_t>(10 + i);
  return t;
}();

int hex_value(char c) { return hex_values[static_cast<unsigned char>(c)]; }

/// Decodes exactly `out.size()` bytes of lowercase hex.
bool from_hex(std::string_view text, std::span<unsigned char> out) {
  if (text.size() != 2 * out.size()) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(text[2 * i]);
    const int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

error io_failure(const std::string& what) {
  return make_error(core_errc::io_error, what + ": " + std::strerror(errno));
}

}  // namespace

// ---- the key -----------------------------------------------------------------------------------

static_assert(sizeof(SHA256_CTX) <= sizeof(std::uint64_t) * 16, "audit_key's midstate storage is too small");

audit_key audit_key::from_bytes(const std::array<unsigned char, size>& bytes) {
  // HMAC's padded keys each fill one SHA-256 block: hash them once and keep the states, so each
  // MAC hashes only the message (and the inner digest).
  unsigned char inner[64];
  unsigned char outer[64];
  for (std::size_t i = 0; i < 64; ++i) {
    const unsigned char b = i < size ? bytes[i] : 0;
    inner[i] = b ^ 0x36;
    outer[i] = b ^ 0x5c;
  }
  audit_key k;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, inner, sizeof inner);
  std::memcpy(k.inner_.data(), &ctx, sizeof ctx);
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, outer, sizeof outer);
  std::memcpy(k.outer_.data(), &ctx, sizeof ctx);
  OPENSSL_cleanse(inner, sizeof inner);
  OPENSSL_cleanse(outer, sizeof outer);
  OPENSSL_cleanse(&ctx, sizeof ctx);
  return k;
}

result<audit_key> audit_key::load(const std::string& path, bool create) {
  std::array<unsigned char, size> bytes{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) return io_failure("audit key " + path);
    if (!create) return make_error(kernel_errc::no_audit_key, "audit key " + path + " does not exist");
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      return make_error(core_errc::io_error, "no random bytes for a new audit key");
    }
    std::error_code ec;
    const auto folder = std::filesystem::path(path).parent_path();
    if (!folder.empty()) std::filesystem::create_directories(folder, ec);
    const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
      if (errno == EEXIST) return load(path, false);  // another process made it first
      return io_failure("audit key " + path);
    }
    const std::string text = to_hex(bytes.data(), bytes.size()) + "\n";
    const bool ok = ::write(out, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::fsync(out);
    ::close(out);
    if (!ok) return io_failure("audit key " + path);
    return from_bytes(bytes);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return io_failure("audit key " + path);
  }
  char text[2 * size + 2] = {};
  const ssize_t n = ::read(fd, text, sizeof text);
  ::close(fd);
  if ((st.st_mode & 077) != 0) {
    return make_error(kernel_errc::no_audit_key,
                      "audit key " + path + " can be read by other users (chmod 600 it, or make a new log)");
  }
  std::string_view hex(text, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.remove_suffix(1);
  if (!from_hex(hex, bytes)) {
    return make_error(kernel_errc::no_audit_key, "audit key " + path + " is not 64 hexadecimal digits");
  }
  return from_bytes(bytes);
}

void audit_key::mac(std::span<const unsigned char, 32> previous, std::string_view entry,
                    std::span<unsigned char, 32> out) const {
  SHA256_CTX ctx;
  std::memcpy(&ctx, inner_.data(), sizeof ctx);
  SHA256_Update(&ctx, previous.data(), previous.size());
  SHA256_Update(&ctx, entry.data(), entry.size());
  SHA256_Final(out.data(), &ctx);
  std::memcpy(&ctx, outer_.data(), sizeof ctx);
  SHA256_Update(&ctx, out.data(), out.size());
  SHA256_Final(out.data(), &ctx);
}

std::string audit_key::chain(std::string_view previous, std::string_view entry) const {
  std::array<unsigned char, 32> prev{};
  if (!previous.empty() && !from_hex(previous, prev)) {
    // A malformed stored MAC chains from its own bytes, so the entry after it can never verify
    // against a MAC that was computed from a different value.
    SHA256(reinterpret_cast<const unsigned char*>(previous.data()), previous.size(), prev.data());
  }
  std::array<unsigned char, 32> digest{};
  mac(prev, entry, digest);
  return to_hex(digest.data(), digest.size());
}

// ---- the head file -----------------------------------------------------------------------------

result<std::optional<audit_head>> read_audit_head(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (!std::filesystem::exists(path)) return std::optional<audit_head>();
    return io_failure("audit head " + path);
  }
  std::string magic;
  int format = 0;
  audit_head head;
  in >> magic >> format >> head.entries;
  if (head.entries > 0) in >> head.mac;
  if (!in || magic != "choir-audit-head" || format != 1 || head.entries < 0 ||
      (head.entries > 0 && head.mac.size() != 64)) {
    return make_error(kernel_errc::audit_broken, "audit head " + path + " is malformed");
  }
  return std::optional<audit_head>(std::move(head));
}

std::string canonical_entry(std::int64_t seq, std::int64_t time_ms, const audit_event& e) {
  // A JSON object with its keys in sorted order and no spaces: one text for one entry. Built by
  // hand because this runs once per gated call (5× cheaper than building a JSON value).
  std::string out;
  out.reserve(256);
  auto field = [&](const char* key, std::string_view text) {
    out += key;
    append_json_string(out, text);
  };
  field("{\"agent\":", e.agent);
  field(",\"argument\":", e.argument);
  field(",\"capability\":", e.capability);
  field(",\"decision\":", e.decision);
  out += ",\"details\":";
  out += e.details.dump(-1, ' ', false, value::error_handler_t::replace);  // objects keep sorted keys
  field(",\"kind\":", e.kind);
  field(",\"reason\":", e.reason);
  field(",\"run\":", e.run_id);
  out += ",\"seq\":" + std::to_string(seq);
  out += ",\"step\":" + (e.step ? std::to_string(*e.step) : std::string("null"));
  field(",\"tenant\":", e.tenant);
  out += ",\"time_ms\":" + std::to_string(time_ms);
  field(",\"user\":", e.user);
  out += '}';
  return out;
}

// ---- appending ---------------------------------------------------------------------------------

struct audit_log::pending {
  std::vector<audit_event> events;
  std::vector<std::int64_t> times;
  bool done = false;
  std::int64_t first_seq = 0;
  std::optional<error> failure;
};

namespace {

/// The default places of the key and the head file: beside a SQLite store, else `./.choir/`.
audit_options with_defaults(audit_options options) {
  if (options.key_file.empty()) options.key_file = ".choir/audit.key";
  if (options.head_file.empty()) options.head_file = ".choir/audit.head";
  if (options.time == nullptr) options.time = &system_clock();
  return options;
}

/// The stored row `seq`, if there is one.
result<std::optional<store::audit_row>> row_at(store::event_store& store, std::int64_t seq) {
  std::optional<store::audit_row> found;
  CHOIR_CHECK(store.scan_audit(seq, [&](const store::audit_view& r) {
    if (r.seq == seq) found = store::audit_row{r.seq, std::string(r.entry), std::string(r.mac)};
    return false;
  }));
  return found;
}

/// Checks the stored chain from just after `from` (whose MAC is `from_mac`) to its end.
result<audit_head> check_tail(store::event_store& store, const audit_key& key, audit_head from) {
  std::optional<error> broken;
  CHOIR_CHECK(store.scan_audit(from.entries + 1, [&](const store::audit_view& r) {
    if (r.seq != from.entries + 1 || key.chain(from.mac, r.entry) != r.mac) {
      broken = make_error(kernel_errc::audit_broken,
                          "audit entry " + std::to_string(from.entries + 1) +
                              " does not chain from the entries before it; run `choir audit verify`");
      return false;
    }
    from.entries = r.seq;
    from.mac = std::string(r.mac);
    return true;
  }));
  if (broken) return std::move(*broken);
  return from;
}

}  // namespace

result<std::unique_ptr<audit_log>> audit_log::open(std::shared_ptr<store::event_store> store, audit_options options) {
  options = with_defaults(std::move(options));
  CHOIR_TRY(auto last, store->last_audit());
  CHOIR_TRY(auto head, read_audit_head(options.head_file));
  auto key = audit_key::load(options.key_file, /*create=*/!last.has_value() && !head.has_value());
  if (!key.ok()) {
    if (key.err().code == kernel_errc::no_audit_key && last) {
      return make_error(kernel_errc::no_audit_key, "the audit log has " + std::to_string(last->seq) + " entries but " +
                                                       key.err().message +
                                                       ": restore the key file, or nothing can be audited");
    }
    return std::move(key).err();
  }
  const std::int64_t stored = last ? last->seq : 0;
  if (!head) {
    if (stored > 0) {
      return make_error(kernel_errc::audit_broken, "the audit log has " + std::to_string(stored) +
                                                       " entries but its head file " + options.head_file +
                                                       " is missing; run `choir audit verify`");
    }
    head = audit_head{};
  }
  if (head->entries > stored) {
    return make_error(kernel_errc::audit_broken, "the audit log ends at entry " + std::to_string(stored) +
                                                     " but its head file records " + std::to_string(head->entries) +
                                                     ": entries were deleted; run `choir audit verify`");
  }
  if (head->entries > 0) {
    CHOIR_TRY(auto at_head, row_at(*store, head->entries));
    if (!at_head || at_head->mac != head->mac) {
      return make_error(kernel_errc::audit_broken, "audit entry " + std::to_string(head->entries) +
                                                       " no longer matches the head file; run `choir audit verify`");
    }
  }
  audit_head now = *head;
  if (stored > head->entries) {
    // Committed by a process that died before writing the head file: they must chain.
    CHOIR_TRY(now, check_tail(*store, *key, *head));
  }
  auto log = std::unique_ptr<audit_log>(new audit_log(std::move(store), std::move(options), *key, now));
  if (now.entries != head->entries) CHOIR_CHECK(log->write_head(now));
  return log;
}

audit_log::audit_log(std::shared_ptr<store::event_store> store, audit_options options, audit_key key, audit_head head)
    : store_(std::move(store)), options_(std::move(options)), key_(key), head_(std::move(head)) {}

audit_log::~audit_log() {
  if (head_fd_ >= 0) ::close(head_fd_);
}

std::int64_t audit_log::entries() const {
  std::lock_guard lock(mutex_);
  return head_.entries;
}

std::map<std::pair<std::string, std::string>, std::uint64_t> audit_log::decisions() const {
  std::lock_guard lock(mutex_);
  return decisions_;
}

std::int64_t audit_log::transactions() const {
  std::lock_guard lock(mutex_);
  return transactions_;
}

result<std::int64_t> audit_log::append(const audit_event& event) { return append(std::span(&event, 1)); }

result<std::int64_t> audit_log::append(std::span<const audit_event> events) {
  if (events.empty()) return entries();
  const std::int64_t now = options_.time->unix_ms();
  std::unique_lock lock(mutex_);
  if (!open_) open_ = std::make_shared<pending>();
  const auto mine = open_;
  const auto offset = static_cast<std::int64_t>(mine->events.size());
  for (const auto& e : events) {
    mine->events.push_back(e);
    mine->times.push_back(now);
  }
  while (!mine->done) {
    if (flushing_) {
      done_.wait(lock);
      continue;
    }
    // Not done and nobody is committing: `mine` is the open batch. Commit it and everything
    // queued with it.
    flushing_ = true;
    auto batch = std::move(open_);
    open_.reset();
    lock.unlock();
    auto committed = commit(*batch);
    lock.lock();
    batch->done = true;
    if (!committed.ok()) {
      batch->failure = std::move(committed).err();
    } else {
      for (const auto& e : batch->events) ++decisions_[{e.kind, e.decision}];
    }
    flushing_ = false;
    done_.notify_all();
  }
  if (mine->failure) return *mine->failure;
  return mine->first_seq + offset + static_cast<std::int64_t>(events.size()) - 1;
}

result<void> audit_log::commit(pending& batch) {
  // Only the committing thread touches `head_` while `flushing_` is set.
  for (int attempt = 0;; ++attempt) {
    std::vector<store::audit_row> rows;
    rows.reserve(batch.events.size());
    std::string prev = head_.mac;
    for (std::size_t i = 0; i < batch.events.size(); ++i) {
      const std::int64_t seq = head_.entries + 1 + static_cast<std::int64_t>(i);
      std::string text = canonical_entry(seq, batch.times[i], batch.events[i]);
      std::string mac = key_.chain(prev, text);
      prev = mac;
      rows.push_back({seq, std::move(text), std::move(mac)});
    }
    auto appended = store_->append_audit(rows);
    if (appended.ok()) {
      batch.first_seq = head_.entries + 1;
      audit_head next{rows.back().seq, rows.back().mac};
      {
        std::lock_guard lock(mutex_);
        head_ = next;
        ++transactions_;
      }
      return write_head(next);
    }
    if (appended.err().code != store::store_errc::conflict || attempt >= 8) return std::move(appended).err();
    // Another process appended first: continue its chain (after checking it).
    CHOIR_TRY(auto caught_up, check_tail(*store_, key_, head_));
    std::lock_guard lock(mutex_);
    head_ = caught_up;
  }
}

result<void> audit_log::write_head(const audit_head& head) {
  // Several processes may share the log: the head only ever moves forward, under a lock on the
  // file. The record has a fixed length and is written in place by one `pwrite` (a rename per
  // commit would cost more than the commit: ext4 flushes a file renamed over another).
  if (head_fd_ < 0) {
    std::error_code ec;
    const auto folder = std::filesystem::path(options_.head_file).parent_path();
    if (!folder.empty()) std::filesystem::create_directories(folder, ec);
    head_fd_ = ::open(options_.head_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (head_fd_ < 0) return io_failure("audit head " + options_.head_file);
  }
  if (::flock(head_fd_, LOCK_EX) != 0) return io_failure("audit head " + options_.head_file);
  auto written = [&]() -> result<void> {
    char current[160] = {};
    const ssize_t n = ::pread(head_fd_, current, sizeof current - 1, 0);
    if (n < 0) return io_failure("audit head " + options_.head_file);
    std::int64_t recorded = -1;
    if (n > 0 && std::sscanf(current, "choir-audit-head 1 %ld", &recorded) == 1 && recorded >= head.entries) return {};
    const std::string record = fmt::format("choir-audit-head 1 {:020} {}\n", head.entries, head.mac);
    if (::pwrite(head_fd_, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
      return io_failure("audit head " + options_.head_file);
    }
    return {};
  }();
  ::flock(head_fd_, LOCK_UN);
  return written;
}

// ---- verifying ---------------------------------------------------------------------------------

value audit_report::to_json() const {
  return {{"ok", ok()},
          {"entries", entries},
          {"verified", verified},
          {"problem", problem.empty() ? value() : value(problem)},
          {"problem_at", problem_at ? value(*problem_at) : value()},
          {"notes", notes}};
}

result<audit_report> verify_audit(store::event_store& store, const audit_options& given) {
  const audit_options options = with_defaults(given);
  CHOIR_TRY(auto head, read_audit_head(options.head_file));
  audit_report report;
  auto key = audit_key::load(options.key_file, false);
  if (!key.ok()) {
    CHOIR_TRY(auto last, store.last_audit());
    if (!last && !head) return report;  // nothing was ever audited
    return std::move(key).err();
  }
  // Each entry's MAC covers the previous entry's stored MAC, so entries can be checked
  // independently: one thread reads rows while another checks the batch read before.
  struct batch {
    std::vector<std::int64_t> seqs;
    std::string text;               ///< the entries, one after another
    std::vector<std::size_t> ends;  ///< where each entry ends in `text`
    std::vector<std::array<unsigned char, 32>> macs;
    std::vector<bool> malformed;           ///< a stored MAC that is not 64 hex digits
    std::array<unsigned char, 32> prev{};  ///< the MAC before the first entry
  };
  constexpr std::size_t batch_rows = 4096;
  /// The index of the first entry of `b` that does not match its MAC, or -1.
  auto check = [&key](const batch& b) -> std::ptrdiff_t {
    std::array<unsigned char, 32> computed{};
    std::size_t begin = 0;
    for (std::size_t i = 0; i < b.seqs.size(); ++i) {
      const std::string_view entry(b.text.data() + begin, b.ends[i] - begin);
      begin = b.ends[i];
      key->mac(i == 0 ? b.prev : b.macs[i - 1], entry, computed);
      if (b.malformed[i] || computed != b.macs[i]) return static_cast<std::ptrdiff_t>(i);
    }
    return -1;
  };
  std::optional<std::int64_t> failed_seq;  // the first entry whose MAC does not match
  std::string failed_entry;
  auto finish = [&](const batch& b, std::ptrdiff_t bad) {
    if (failed_seq) return;
    if (bad < 0) {
      report.verified += static_cast<std::int64_t>(b.seqs.size());
      return;
    }
    report.verified += bad;
    failed_seq = b.seqs[static_cast<std::size_t>(bad)];
    const std::size_t begin = bad == 0 ? 0 : b.ends[static_cast<std::size_t>(bad) - 1];
    failed_entry = b.text.substr(begin, b.ends[static_cast<std::size_t>(bad)] - begin);
  };
  auto fresh = [&](const std::array<unsigned char, 32>& prev) {
    auto b = std::make_unique<batch>();
    b->seqs.reserve(batch_rows);
    b->ends.reserve(batch_rows);
    b->macs.reserve(batch_rows);
    b->text.reserve(batch_rows * 320);
    b->prev = prev;
    return b;
  };
  std::unique_ptr<batch> filling = fresh({});  // the first entry chains from 32 zero bytes
  std::unique_ptr<batch> in_flight;
  std::future<std::ptrdiff_t> checking;
  auto wait_in_flight = [&] {
    if (!in_flight) return;
    finish(*in_flight, checking.get());
    in_flight.reset();
  };
  std::string mac_at_head;
  std::optional<std::int64_t> gap_at;
  std::int64_t gap_next = 0;
  std::int64_t expected = 1;
  CHOIR_CHECK(store.scan_audit(1, [&](const store::audit_view& row) {
    ++report.entries;
    if (row.seq != expected) {
      gap_at = expected;
      gap_next = row.seq;
      return false;
    }
    std::array<unsigned char, 32> mac{};
    const bool bad = !from_hex(row.mac, mac);
    filling->seqs.push_back(row.seq);
    filling->text.append(row.entry);
    filling->ends.push_back(filling->text.size());
    filling->macs.push_back(mac);
    filling->malformed.push_back(bad);
    if (head && row.seq == head->entries) mac_at_head = std::string(row.mac);
    ++expected;
    if (filling->seqs.size() == batch_rows) {
      wait_in_flight();
      if (failed_seq) return false;
      in_flight = std::move(filling);
      filling = fresh(in_flight->macs.back());
      checking = std::async(std::launch::async, [&check, b = in_flight.get()] { return check(*b); });
    }
    return true;
  }));
  wait_in_flight();
  if (!failed_seq && !filling->seqs.empty()) finish(*filling, check(*filling));
  auto fail = [&](std::int64_t at, std::string what) {
    report.problem_at = at;
    report.problem = "entry " + std::to_string(at) + ": " + std::move(what);
  };
  if (failed_seq) {
    // Tell a moved entry from an edited one by the sequence number its text claims.
    const value parsed = value::parse(failed_entry, nullptr, false);
    const value* claimed = parsed.is_object() && parsed.contains("seq") ? &parsed["seq"] : nullptr;
    if (claimed != nullptr && claimed->is_number_integer() && claimed->get<std::int64_t>() != *failed_seq) {
      fail(*failed_seq, "holds entry " + std::to_string(claimed->get<std::int64_t>()) +
                            " (entries were reordered, inserted or deleted and renumbered)");
    } else {
      fail(*failed_seq, "does not match its MAC (the entry was edited or inserted, or its MAC replaced)");
    }
  } else if (gap_at) {
    fail(*gap_at, gap_next - *gap_at == 1 ? "missing (deleted): the next stored entry is " + std::to_string(gap_next)
                                          : "missing (deleted), with the " + std::to_string(gap_next - *gap_at - 1) +
                                                " after it: the next stored entry is " + std::to_string(gap_next));
  }
  if (!report.ok()) return report;
  const std::int64_t stored = expected - 1;
  if (!head) {
    if (stored > 0) fail(stored, "the head file " + options.head_file + " is missing, so the tail cannot be checked");
    return report;
  }
  if (head->entries > stored) {
    fail(stored + 1, "missing (deleted): the log ends at entry " + std::to_string(stored) +
                         " but the head file records " + std::to_string(head->entries) + " entries");
  } else if (head->entries > 0 && mac_at_head != head->mac) {
    fail(head->entries, "does not match the head file's MAC (the chain was rewritten)");
  } else if (stored > head->entries) {
    report.notes.push_back("entries " + std::to_string(head->entries + 1) + " to " + std::to_string(stored) +
                           " were committed after the head file was last written (a process stopped in between); "
                           "they chain correctly");
  }
  return report;
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return to_hex(digest, sizeof digest);
}

// ---- redaction ---------------------------------------------------------------------------------

value redact(const value& arguments, std::span<const std::string> log_fields) {
  const bool everything = std::find(log_fields.begin(), log_fields.end(), "*") != log_fields.end();
  if (everything) return arguments;
  if (!arguments.is_object()) return arguments.is_null() ? value() : value("[redacted]");
  value out = value::object();
  for (const auto& [k, v] : arguments.items()) {
    const bool logged = std::find(log_fields.begin(), log_fields.end(), k) != log_fields.end();
    out[k] = logged ? v : value("[redacted]");
  }
  return out;
}

}  // namespace choir::kernel
