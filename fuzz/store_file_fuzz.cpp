/// libFuzzer target for opening store files: the input is written as a database file and opened
/// (migrating it if it is an older schema), then every run in it is listed, shown and loaded.
/// Whatever the bytes, opening must fail cleanly (`not_a_store`, `corrupt`, `newer_schema`, …) or
/// give a store whose reads fail cleanly — never a crash, a hang or a sanitizer report.
/// Seeds: fuzz/corpus/store_file holds stores of schema 1, 2 and 5 with a few runs (schema 5 with
/// steps in the step log and in a pack).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "choir/store/event_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("choir-store-fuzz-" + std::to_string(::getpid()) + ".db")).string();
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  {
    auto opened = choir::store::open_sqlite_store(path);
    if (opened.ok()) {
      auto& s = **opened;
      if (auto runs = s.list_runs(16); runs.ok()) {
        for (const auto& run : *runs) {
          (void)s.steps(run.run_id, 0, 64);
          (void)s.state_at(run.run_id, run.position());
          (void)s.effects(run.run_id);
          (void)s.get_graph(run.graph_version);
        }
      }
    }
  }  // the store is closed before its files are removed
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return 0;
}
