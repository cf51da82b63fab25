#pragma once
// Benchmark sizes scale with CHOIR_BENCH_SCALE (default 1): the CI smoke run sets a small factor so
// that every benchmark runs once at a tiny size, while local runs use the sizes the issues name.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace choir::bench {

/// `full` scaled by CHOIR_BENCH_SCALE, at least 1.
inline std::int64_t scaled(std::int64_t full) {
  static const double factor = [] {
    const char* text = std::getenv("CHOIR_BENCH_SCALE");
    const double f = text ? std::atof(text) : 1.0;
    return f > 0 ? f : 1.0;
  }();
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(static_cast<double>(full) * factor));
}

/// The process's resident set in bytes (from /proc/self/statm); 0 if it cannot be read.
inline std::int64_t resident_bytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long total_pages = 0;
  long resident_pages = 0;
  const int fields = std::fscanf(statm, "%ld %ld", &total_pages, &resident_pages);
  std::fclose(statm);
  if (fields != 2) return 0;
  return static_cast<std::int64_t>(resident_pages) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace choir::bench
