#include "choir/kernel/audit.hpp"

#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "choir/kernel/contract.hpp"
#include "choir/store/synchronized.hpp"

namespace choir::kernel {
namespace {

namespace fs = std::filesystem;

class Audit : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("choir-audit-" + std::string(info->name()) + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.key_file = (dir_ / "audit.key").string();
    options_.head_file = (dir_ / "audit.head").string();
    options_.time = &clock_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<store::event_store> open_store() {
    auto s = store::open_sqlite_store((dir_ / "choir.db").string(), {.owner = "test"}, clock_);
    EXPECT_TRUE(s.ok()) << s.err().message;
    return store::synchronized(std::move(s).value());
  }

  /// Writes `n` entries through a fresh log and closes everything.
  void write_entries(int n) {
    auto log = audit_log::open(open_store(), options_);
    ASSERT_TRUE(log.ok()) << log.err().message;
    for (int i = 0; i < n; ++i) {
      audit_event e{.kind = "call", .tenant = "acme", .user = "ada", .agent = "researcher", .run_id = "run-1"};
      e.step = i;
      e.capability = "web.fetch";
      e.argument = "https://example.org/" + std::to_string(i);
      e.decision = "allow";
      ASSERT_EQ(*(*log)->append(e), i + 1);
    }
  }

  /// Tampers with the database behind the store's back, as someone with file access would
  /// (dropping the append-only triggers first).
  void tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "choir.db").string().c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    const std::string all = "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; " + sql;
    const int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, &message);
    const std::string text = message != nullptr ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << text;
  }

  audit_report verify() {
    auto s = open_store();
    auto r = verify_audit(*s, options_);
    EXPECT_TRUE(r.ok()) << r.err().message;
    return r.ok() ? *r : audit_report{};
  }

  manual_clock clock_{1'700'000'000'000};
  fs::path dir_;
  audit_options options_;
};

TEST_F(Audit, TheChainIsHmacSha256OverThePreviousMacAndTheEntry) {
  std::array<unsigned char, 32> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 1);
  const auto key = audit_key::from_bytes(bytes);
  auto reference = [&](const std::array<unsigned char, 32>& prev, const std::string& entry) {
    std::string message(reinterpret_cast<const char*>(prev.data()), prev.size());
    message += entry;
    unsigned char out[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), bytes.data(), static_cast<int>(bytes.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
      hex += "0123456789abcdef"[out[i] >> 4];
      hex += "0123456789abcdef"[out[i] & 0xF];
    }
    return hex;
  };
  const std::string first = key.chain("", R"({"seq":1})");
  EXPECT_EQ(first, reference({}, R"({"seq":1})"));
  std::array<unsigned char, 32> prev{};
  for (std::size_t i = 0; i < 32; ++i)
    prev[i] = static_cast<unsigned char>(std::stoi(first.substr(2 * i, 2), nullptr, 16));
  EXPECT_EQ(key.chain(first, R"({"seq":2})"), reference(prev, R"({"seq":2})"));
}

TEST_F(Audit, EntriesAreCanonicalJsonNamingWhoDidWhat) {
  audit_event e{.kind = "call", .tenant = "acme", .user = "ada", .agent = "a", .run_id = "r"};
  e.step = 3;
  e.capability = "fs.read";
  e.decision = "deny";
  e.reason = "no grant";
  e.details = {{"z", 1}, {"a", "x"}};
  const std::string text = canonical_entry(9, 1234, e);
  EXPECT_EQ(
      text,
      R"({"agent":"a","argument":"","capability":"fs.read","decision":"deny","details":{"a":"x","z":1},)"
      R"("kind":"call","reason":"no grant","run":"r","seq":9,"step":3,"tenant":"acme","time_ms":1234,"user":"ada"})");
  e.details = {{"bad", std::string("\xff\xfe")}};  // invalid UTF-8 is replaced, never an exception
  EXPECT_NE(canonical_entry(1, 1, e).find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
}

TEST_F(Audit, AnIntactLogVerifies) {
  write_entries(50);
  const auto report = verify();
  EXPECT_TRUE(report.ok()) << report.problem;
  EXPECT_EQ(report.entries, 50);
  EXPECT_EQ(report.verified, 50);
  EXPECT_TRUE(report.notes.empty());
  auto head = read_audit_head(options_.head_file);
  ASSERT_TRUE(head.ok() && head->has_value());
  EXPECT_EQ((*head)->entries, 50);
  // The key is private to its owner.
  struct stat st {};
  ASSERT_EQ(::stat(options_.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Audit, AnEmptyLogVerifiesWithoutAKey) {
  const auto report = verify();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.entries, 0);
}

TEST_F(Audit, ALongLogIsCheckedInBatchesAndTheFirstProblemWins) {
  {
    auto log = audit_log::open(open_store(), options_);
    ASSERT_TRUE(log.ok());
    std::vector<audit_event> batch(1000, audit_event{.kind = "call", .tenant = "acme", .user = "ada"});
    for (int i = 0; i < 12; ++i) ASSERT_TRUE((*log)->append(batch).ok());
  }
  auto report = verify();
  EXPECT_TRUE(report.ok()) << report.problem;
  EXPECT_EQ(report.verified, 12'000);
  // Two edits in different batches, and a deletion after both: the earliest is reported.
  tamper(
      "UPDATE audit SET entry = replace(entry, 'ada', 'eve') WHERE seq IN (5000, 9000); DELETE FROM audit "
      "WHERE seq = 11000");
  report = verify();
  EXPECT_EQ(report.problem_at, 5000);
  EXPECT_EQ(report.verified, 4999);
  tamper("DELETE FROM audit WHERE seq = 4100");
  EXPECT_EQ(verify().problem_at, 4100);
}

TEST_F(Audit, AnEditedEntryIsFound) {
  write_entries(10);
  tamper("UPDATE audit SET entry = replace(entry, '\"allow\"', '\"deny\"') WHERE seq = 4");
  const auto report = verify();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.problem_at, 4);
  EXPECT_EQ(report.verified, 3);
  EXPECT_NE(report.problem.find("does not match its MAC"), std::string::npos) << report.problem;
}

TEST_F(Audit, ADeletedEntryIsFound) {
  write_entries(10);
  tamper("DELETE FROM audit WHERE seq = 6");
  const auto report = verify();
  EXPECT_EQ(report.problem_at, 6);
  EXPECT_NE(report.problem.find("missing (deleted)"), std::string::npos) << report.problem;
}

TEST_F(Audit, ADeletedAndRenumberedEntryIsFound) {
  write_entries(10);
  tamper("DELETE FROM audit WHERE seq = 6; UPDATE audit SET seq = seq - 1 WHERE seq > 6");
  const auto report = verify();
  EXPECT_EQ(report.problem_at, 6);
  EXPECT_NE(report.problem.find("holds entry 7"), std::string::npos) << report.problem;
}

TEST_F(Audit, ADeletedTailIsFoundThroughTheHeadFile) {
  write_entries(10);
  tamper("DELETE FROM audit WHERE seq > 7");
  const auto report = verify();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.verified, 7);  // what is left chains, but the head file knows there were 10
  EXPECT_EQ(report.problem_at, 8);
  EXPECT_NE(report.problem.find("head file records 10"), std::string::npos) << report.problem;
  // And nothing more is appended to the truncated log.
  auto log = audit_log::open(open_store(), options_);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.err().code, kernel_errc::audit_broken);
}

TEST_F(Audit, AnInsertedEntryIsFound) {
  write_entries(10);
  // Make room at 5 and put a plausible entry there with a MAC copied from elsewhere.
  tamper(
      "UPDATE audit SET seq = seq + 100 WHERE seq >= 5; UPDATE audit SET seq = seq - 99 WHERE seq >= 105; "
      "INSERT INTO audit SELECT 5, replace(entry, '\"seq\":4', '\"seq\":5'), mac FROM audit WHERE seq = 4");
  const auto report = verify();
  EXPECT_EQ(report.problem_at, 5);
}

TEST_F(Audit, ReorderedEntriesAreFound) {
  write_entries(10);
  tamper(
      "UPDATE audit SET seq = 100 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; "
      "UPDATE audit SET seq = 4 WHERE seq = 100");
  const auto report = verify();
  EXPECT_EQ(report.problem_at, 3);
  EXPECT_NE(report.problem.find("holds entry 4"), std::string::npos) << report.problem;
}

TEST_F(Audit, AChainRecomputedWithAnotherKeyIsFound) {
  write_entries(5);
  // Someone without the key rewrites entry 2 and recomputes every MAC from there with their own.
  std::array<unsigned char, 32> theirs{};
  theirs.fill(0x42);
  const auto forged = audit_key::from_bytes(theirs);
  auto s = open_store();
  std::vector<store::audit_row> rows;
  ASSERT_TRUE(s->scan_audit(1, [&](const store::audit_view& r) {
                 rows.push_back({r.seq, std::string(r.entry), std::string(r.mac)});
                 return true;
               }).ok());
  s.reset();
  std::string sql;
  std::string prev = rows[0].mac;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    std::string entry = rows[i].entry;
    if (i == 1) entry.replace(entry.find("allow"), 5, "deny!");
    prev = forged.chain(prev, entry);
    sql += "UPDATE audit SET entry = '" + entry + "', mac = '" + prev + "' WHERE seq = " + std::to_string(i + 1) + ";";
  }
  tamper(sql);
  const auto report = verify();
  EXPECT_EQ(report.problem_at, 2);
}

TEST_F(Audit, AReplacedHeadOrMissingHeadFileIsFound) {
  write_entries(4);
  fs::remove(options_.head_file);
  auto report = verify();
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.problem.find("head file"), std::string::npos) << report.problem;
  EXPECT_EQ(audit_log::open(open_store(), options_).err().code, kernel_errc::audit_broken);
}

TEST_F(Audit, AMissingKeyIsAnErrorOnceThereAreEntries) {
  write_entries(2);
  fs::remove(options_.key_file);
  auto s = open_store();
  EXPECT_EQ(verify_audit(*s, options_).err().code, kernel_errc::no_audit_key);
  EXPECT_EQ(audit_log::open(s, options_).err().code, kernel_errc::no_audit_key);
}

TEST_F(Audit, AKeyOthersCanReadIsRefused) {
  write_entries(1);
  ::chmod(options_.key_file.c_str(), 0644);
  auto s = open_store();
  auto opened = audit_log::open(s, options_);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.err().message.find("chmod 600"), std::string::npos);
}

TEST_F(Audit, EntriesCommittedBeforeTheHeadWasWrittenChainOnAndAreNoted) {
  write_entries(3);
  const auto head_before = *read_audit_head(options_.head_file);
  {
    auto log = audit_log::open(open_store(), options_);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->append(audit_event{.kind = "x"}).ok());
  }
  // As if the process died between committing entry 4 and writing the head file.
  std::ofstream(options_.head_file) << "choir-audit-head 1 3 " << head_before->mac << "\n";
  auto report = verify();
  EXPECT_TRUE(report.ok()) << report.problem;
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("entries 4 to 4"), std::string::npos);
  // Reopening checks them and moves the head forward.
  auto log = audit_log::open(open_store(), options_);
  ASSERT_TRUE(log.ok()) << log.err().message;
  EXPECT_EQ((*log)->entries(), 4);
  EXPECT_EQ((*read_audit_head(options_.head_file))->entries, 4);
}

TEST_F(Audit, ConcurrentAppendersShareTransactionsAndEveryEntryCommitsOnce) {
  auto log = audit_log::open(open_store(), options_);
  ASSERT_TRUE(log.ok());
  constexpr int threads = 4;
  constexpr int each = 200;
  std::vector<std::thread> pool;
  std::vector<std::vector<std::int64_t>> seqs(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        auto seq = (*log)->append(audit_event{.kind = "call", .user = std::to_string(t)});
        ASSERT_TRUE(seq.ok());
        seqs[t].push_back(*seq);
      }
    });
  }
  for (auto& th : pool) th.join();
  std::vector<std::int64_t> all;
  for (const auto& s : seqs) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(threads * each));
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<std::int64_t>(i + 1));
  EXPECT_LE((*log)->transactions(), threads * each);
  log->reset();
  const auto report = verify();
  EXPECT_TRUE(report.ok()) << report.problem;
  EXPECT_EQ(report.entries, threads * each);
}

TEST_F(Audit, TwoProcessesAppendingToOneStoreKeepOneChain) {
  auto first = audit_log::open(open_store(), options_);
  auto second = audit_log::open(open_store(), options_);
  ASSERT_TRUE(first.ok() && second.ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*first)->append(audit_event{.kind = "a"}).ok());
    ASSERT_TRUE((*second)->append(audit_event{.kind = "b"}).ok());  // finds the first's entries and chains on
  }
  EXPECT_EQ((*second)->entries(), 10);
  const auto report = verify();
  EXPECT_TRUE(report.ok()) << report.problem;
  EXPECT_EQ(report.entries, 10);
}

TEST(Redaction, KeepsOnlyTheLoggedFields) {
  const std::vector<std::string> fields{"path"};
  EXPECT_EQ(redact({{"path", "a.txt"}, {"content", "secret"}}, fields),
            value({{"path", "a.txt"}, {"content", "[redacted]"}}));
  EXPECT_EQ(redact("a bare string", fields), "[redacted]");
  EXPECT_EQ(redact(nullptr, fields), nullptr);
  const std::vector<std::string> all{"*"};
  EXPECT_EQ(redact({{"content", "x"}}, all), value({{"content", "x"}}));
  EXPECT_EQ(redact({{"content", "x"}}, {}), value({{"content", "[redacted]"}}));
}

}  // namespace
}  // namespace choir::kernel
