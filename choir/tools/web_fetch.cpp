// `web.fetch`: an HTTP(S) GET an agent may make, and nothing it may reach by surprise.
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "choir/net/http_client.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

bool in_v4(const std::array<unsigned char, 4>& a, unsigned char b0, unsigned char b1, int prefix) {
  const std::uint32_t addr =
      (std::uint32_t{a[0]} << 24) | (std::uint32_t{a[1]} << 16) | (std::uint32_t{a[2]} << 8) | a[3];
  const std::uint32_t net = (std::uint32_t{b0} << 24) | (std::uint32_t{b1} << 16);
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (addr & mask) == (net & mask);
}

std::string v4_refusal(const std::array<unsigned char, 4>& a) {
  if (in_v4(a, 127, 0, 8)) return "is a loopback address";
  if (in_v4(a, 10, 0, 8) || in_v4(a, 172, 16, 12) || in_v4(a, 192, 168, 16)) return "is a private address";
  if (in_v4(a, 169, 254, 16)) return "is a link-local address (cloud metadata lives there)";
  if (in_v4(a, 100, 64, 10)) return "is a shared (carrier-grade NAT) address";
  if (in_v4(a, 0, 0, 8)) return "is an unspecified address";
  if (a[0] >= 224) return "is a multicast or reserved address";
  return {};
}

/// The host of a URL pattern (`https://api.example.com/**` → `api.example.com`), or empty.
std::string pattern_host(std::string_view pattern) {
  const auto scheme = pattern.find("://");
  if (scheme == std::string_view::npos) return {};
  auto rest = pattern.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    return close == std::string_view::npos ? std::string() : std::string(rest.substr(1, close - 1));
  }
  return std::string(rest.substr(0, rest.find(':')));
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// `location` (absolute, or a path on the same origin) against the URL it answered.
result<std::string> resolve_location(const std::string& base, std::string_view location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return std::string(location);
  if (location.starts_with("//")) {
    return base.substr(0, base.find("://") + 1) + std::string(location);
  }
  CHOIR_TRY(net::url_parts parts, net::parse_url(base));
  const std::string origin = parts.scheme + "://" +
                             (parts.host.find(':') != std::string::npos ? "[" + parts.host + "]" : parts.host) + ":" +
                             parts.port;
  if (location.starts_with("/")) return origin + std::string(location);
  std::string dir = parts.target.substr(0, parts.target.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return origin + dir + std::string(location);
}

class web_fetch final : public tool {
 public:
  explicit web_fetch(web_limits limits)
      : tool({.name = "web.fetch",
              .description = "Fetch a web page or an API answer over HTTP(S) with GET. Private and loopback "
                             "addresses are refused unless the agent's capability names them.",
              .input_schema = {{"type", "object"},
                               {"properties",
                                {{"url", {{"type", "string"}, {"pattern", "^https?://"}, {"maxLength", 4096}}},
                                 {"max_bytes", {{"type", "integer"}, {"minimum", 1}}},
                                 {"timeout_ms", {{"type", "integer"}, {"minimum", 1}}}}},
                               {"required", {"url"}},
                               {"additionalProperties", false}},
              .output_schema = {{"type", "object"}, {"required", {"url", "status", "content"}}},
              .idempotent = true,  // a GET
              .subject = "url"}),
        limits_(std::move(limits)) {}

  result<value> call(const value& arguments, const tool_context& context) override {
    std::string url = arguments["url"].get<std::string>();
    std::size_t max_bytes = limits_.max_bytes;
    if (arguments.contains("max_bytes")) {
      max_bytes = std::min(max_bytes, static_cast<std::size_t>(arguments["max_bytes"].get<std::int64_t>()));
    }
    auto timeout = limits_.timeout;
    if (arguments.contains("timeout_ms")) {
      timeout = std::min(timeout, std::chrono::milliseconds(arguments["timeout_ms"].get<std::int64_t>()));
    }
    value redirects = value::array();
    for (int hop = 0;; ++hop) {
      auto parts = net::parse_url(url);
      if (!parts.ok()) return make_error(tool_errc::invalid_arguments, parts.err().message);
      // A private address is reached only if a pattern of the capability names this very host.
      const bool named = std::any_of(context.patterns.begin(), context.patterns.end(),
                                     [&](const std::string& p) { return iequal(pattern_host(p), parts->host); });
      net::http_request request{.method = "GET", .url = url, .timeout = timeout};
      request.headers = {{"Accept", "*/*"}, {"Accept-Encoding", "identity"}};
      if (!named) request.vet_address = [](std::string_view address) { return refused_address(address); };
      std::string body;
      bool truncated = false;
      auto response = net::http_call(request, [&](const net::http_response&, std::string_view chunk) {
        const auto room = max_bytes - body.size();
        body.append(chunk.substr(0, room));
        if (chunk.size() > room) {
          truncated = true;
          return false;
        }
        return true;
      });
      if (!response.ok()) {
        const bool refused = response.err().message.find(": refused: ") != std::string::npos;
        return make_error(refused ? tool_errc::forbidden_address : tool_errc::failed,
                          refused ? response.err().message + " (name the host in the capability's patterns to allow it)"
                                  : response.err().message);
      }
      const int status = response->status;
      const auto location = response->header("location");
      if (status >= 300 && status < 400 && status != 304 && !location.empty()) {
        if (hop >= limits_.max_redirects) {
          return make_error(tool_errc::limit_exceeded, "more than " + std::to_string(limits_.max_redirects) +
                                                           " redirects from " + arguments["url"].get<std::string>());
        }
        CHOIR_TRY(std::string next, resolve_location(url, location));
        if (!next.starts_with("http://") && !next.starts_with("https://")) {
          return make_error(tool_errc::failed, "a redirect to " + next + " leaves HTTP");
        }
        if (context.recheck) {  // the next place must be allowed as the first was
          if (auto allowed = context.recheck(next); !allowed.ok()) {
            return make_error(tool_errc::failed, "the redirect to " + next + " is refused: " + allowed.err().message);
          }
        }
        redirects.push_back(next);
        url = std::move(next);
        continue;
      }
      std::string content = as_text(body);
      return value{{"url", url},
                   {"status", status},
                   {"content_type", std::string(response->header("content-type"))},
                   {"content", std::move(content)},
                   {"truncated", truncated},
                   {"redirects", std::move(redirects)}};
    }
  }

 private:
  web_limits limits_;
};

}  // namespace

std::string refused_address(std::string_view address) {
  const std::string text(address);
  std::array<unsigned char, 16> v6{};
  std::array<unsigned char, 4> v4{};
  if (::inet_pton(AF_INET, text.c_str(), v4.data()) == 1) return v4_refusal(v4);
  if (::inet_pton(AF_INET6, text.c_str(), v6.data()) != 1) return "is not an IP address";
  static constexpr std::array<unsigned char, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(mapped.begin(), mapped.end(), v6.begin())) {  // ::ffff:a.b.c.d is a.b.c.d
    return v4_refusal({v6[12], v6[13], v6[14], v6[15]});
  }
  const bool zero_prefix = std::all_of(v6.begin(), v6.begin() + 15, [](unsigned char b) { return b == 0; });
  if (zero_prefix && v6[15] == 1) return "is a loopback address";
  if (zero_prefix && v6[15] == 0) return "is an unspecified address";
  if ((v6[0] & 0xfe) == 0xfc) return "is a private address";
  if (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) return "is a link-local address";
  if (v6[0] == 0xff) return "is a multicast address";
  return {};
}

std::shared_ptr<tool> web_tool(web_limits limits) { return std::make_shared<web_fetch>(std::move(limits)); }

}  // namespace choir::tools
