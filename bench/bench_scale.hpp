#pragma once
// Benchmark sizes scale with CHOIR_BENCH_SCALE (default 1): the CI smoke run sets a small factor so
// that every benchmark runs once at a tiny size, while local runs use the sizes the issues name.
#include <algorithm>
#include <cstdint>
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

}  // namespace choir::bench
