// Fuzzes the AgentContract loader: any input must load or fail with an error, never crash, hang or
// leak; a contract that loads must also describe itself as JSON.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "choir/kernel/contract.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = choir::kernel::load_contract(text, "fuzz.yaml");
  if (loaded.ok()) (void)loaded->contract.to_json().dump();
  return 0;
}
