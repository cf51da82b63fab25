#include "choir/core/id.hpp"

#include <cstring>

namespace choir {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string uuid::to_string() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0xF]);
  }
  return out;
}

result<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36) {
    return make_error(core_errc::parse_error, "a UUID has 36 characters, this has " + std::to_string(text.size()));
  }
  uuid id;
  std::size_t byte = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') {
        return make_error(core_errc::parse_error, "expected '-' at position " + std::to_string(i) + " of the UUID");
      }
      ++i;
      continue;
    }
    const int hi = hex_value(text[i]);
    const int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(core_errc::parse_error,
                        "not a hexadecimal digit at position " + std::to_string(hi < 0 ? i : i + 1) + " of the UUID");
    }
    id.bytes[byte++] = static_cast<std::uint8_t>((hi << 4) | lo);
    i += 2;
  }
  return id;
}

bool uuid::is_nil() const noexcept {
  for (auto b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

std::int64_t uuid::unix_ms() const noexcept {
  std::int64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | bytes[static_cast<std::size_t>(i)];
  return ms;
}

id_generator::id_generator(const clock& time) : id_generator(time, std::random_device{}()) {}

id_generator::id_generator(const clock& time, std::uint64_t seed) : clock_(&time), random_(seed) {}

uuid id_generator::next() {
  std::lock_guard lock(mutex_);
  std::int64_t ms = clock_->unix_ms();
  if (ms < 0) ms = 0;
  if (ms > last_ms_) {
    last_ms_ = ms;
    // Start each millisecond at a random point in the lower half so the counter rarely overflows.
    counter_ = static_cast<std::uint16_t>(random_() & 0x7FF);
  } else if (counter_ >= 0xFFF) {
    ++last_ms_;  // counter exhausted (or clock went back): borrow the next millisecond
    counter_ = static_cast<std::uint16_t>(random_() & 0x7FF);
  } else {
    ++counter_;
  }
  uuid id;
  const auto ts = static_cast<std::uint64_t>(last_ms_) & 0xFFFF'FFFF'FFFFULL;
  for (int i = 0; i < 6; ++i) id.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ts >> (40 - 8 * i));
  id.bytes[6] = static_cast<std::uint8_t>(0x70 | ((counter_ >> 8) & 0x0F));
  id.bytes[7] = static_cast<std::uint8_t>(counter_ & 0xFF);
  const std::uint64_t rand_b = random_();
  for (int i = 0; i < 8; ++i)
    id.bytes[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(rand_b >> (56 - 8 * i));
  id.bytes[8] = static_cast<std::uint8_t>(0x80 | (id.bytes[8] & 0x3F));  // RFC 9562 variant
  return id;
}

uuid new_id() {
  static id_generator generator;
  return generator.next();
}

}  // namespace choir

std::size_t std::hash<choir::uuid>::operator()(const choir::uuid& id) const noexcept {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::memcpy(&a, id.bytes.data(), 8);
  std::memcpy(&b, id.bytes.data() + 8, 8);
  return static_cast<std::size_t>(a ^ (b * 0x9E3779B97F4A7C15ULL));
}
