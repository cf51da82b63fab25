// Fuzzes the kernel's document loaders, AgentContract and Policy: any input must load or fail with
// an error, never crash, hang or leak; what loads must also answer questions about itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "choir/kernel/contract.hpp"
#include "choir/kernel/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto contract = choir::kernel::load_contract(text, "fuzz.yaml");
  if (contract.ok()) (void)contract->contract.to_json().dump();
  auto policy = choir::kernel::policy::load(text, "fuzz.yaml");
  if (policy.ok()) {
    (void)policy->decide("a", "u", "fs.read", "workspace/x");
    if (contract.ok()) (void)policy->admit(contract->contract, "a", "u");
  }
  (void)choir::kernel::glob_match(text.substr(0, size / 2), text.substr(size / 2));
  return 0;
}
