#pragma once
/// Immutable agent state with structural sharing.
///
/// A `state` maps keys to values. Every operation returns a new `state` and leaves the old one
/// untouched; the two share every key that did not change, so a step copies only what it writes.
/// A key holding a JSON array is stored as a `persistent_list`: appending to it is amortized O(1)
/// and does not copy the list (Burr deep-copies the list on every append, O(n²) over a run).
///
/// A `state` is a small handle (one shared pointer); copying it is O(1). States and lists may be
/// read from any number of threads at once; an operation on one version never changes what another
/// version shows.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir::graph {

namespace detail {
struct list_spine;
struct state_slot;
struct state_impl;
}  // namespace detail

/// A persistent (immutable, structurally shared) list of JSON values.
///
/// Elements live in fixed-size chunks shared between versions. `push_back` on the newest version
/// of a list appends in place (the new element is invisible to older versions); on an older
/// version it copies at most one chunk and the chunk table, so forked lists stay correct.
class persistent_list {
 public:
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = value;
    using difference_type = std::ptrdiff_t;
    using pointer = const value*;
    using reference = const value&;

    const_iterator() = default;
    reference operator*() const { return (*list_)[index_]; }
    pointer operator->() const { return &(*list_)[index_]; }
    const_iterator& operator++() {
      ++index_;
      return *this;
    }
    const_iterator operator++(int) {
      auto old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.index_ == b.index_; }

   private:
    friend class persistent_list;
    const_iterator(const persistent_list* list, std::size_t index) : list_(list), index_(index) {}
    const persistent_list* list_ = nullptr;
    std::size_t index_ = 0;
  };

  persistent_list() = default;
  /// Builds a list from a JSON array (a non-array yields an empty list; callers check first).
  [[nodiscard]] static persistent_list from_json(const value& array);

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Element `i`; `i < size()` is the caller's to ensure. O(1).
  [[nodiscard]] const value& operator[](std::size_t i) const;
  [[nodiscard]] const value& back() const { return (*this)[size_ - 1]; }
  [[nodiscard]] const_iterator begin() const { return {this, 0}; }
  [[nodiscard]] const_iterator end() const { return {this, size_}; }

  /// A new list with `item` appended. Amortized O(1); `*this` is unchanged.
  [[nodiscard]] persistent_list push_back(value item) const;
  /// A new list with every element of the JSON array `items` appended.
  [[nodiscard]] persistent_list extend(const value& items) const;

  /// The list as one JSON array (copies every element).
  [[nodiscard]] value to_json() const;
  /// True if both lists hold the same elements.
  [[nodiscard]] bool equals(const persistent_list& other) const;
  /// True if `other` reads element 0 from the same chunk as this list (used by tests to show
  /// that an append did not copy).
  [[nodiscard]] bool shares_storage_with(const persistent_list& other) const;

 private:
  std::shared_ptr<detail::list_spine> spine_;
  std::size_t size_ = 0;
};

/// A borrowed reference to what one state key holds: a JSON value (`json`), or for a key holding an
/// array, the persistent list (`list`; `json` is then null: `state::get_if` materializes it).
struct value_ref {
  const value* json = nullptr;
  const persistent_list* list = nullptr;

  [[nodiscard]] explicit operator bool() const noexcept { return json != nullptr || list != nullptr; }
};

/// One change to one key, as actions produce them and the event store records them.
struct state_op {
  enum class kind { set, append, extend, increment, remove };
  kind op = kind::set;
  std::string key;
  value operand;  ///< the new value, the item, the items, the integer amount; null for remove
};

/// The changes one step makes, in order. Its JSON form is documented in docs/graph-yaml.md
/// ("State deltas"): `[{"op":"set","key":"count","value":1}, …]`.
class state_delta {
 public:
  state_delta& set(std::string key, value v);
  state_delta& append(std::string key, value item);
  state_delta& extend(std::string key, value items);
  state_delta& increment(std::string key, std::int64_t by = 1);
  state_delta& remove(std::string key);

  [[nodiscard]] const std::vector<state_op>& ops() const noexcept { return ops_; }
  [[nodiscard]] bool empty() const noexcept { return ops_.empty(); }
  void clear() noexcept { ops_.clear(); }
  [[nodiscard]] value to_json() const;
  /// `dump_json(to_json())`, written without building the value.
  [[nodiscard]] std::string to_json_text() const;
  /// Parses the JSON form; errors name the index of the offending op.
  [[nodiscard]] static result<state_delta> from_json(const value& ops);

 private:
  std::vector<state_op> ops_;
};

class state {
 public:
  /// The empty state.
  state();
  /// A state holding every member of a JSON object. Fails with `graph_errc::invalid_state` if
  /// `object` is not an object.
  [[nodiscard]] static result<state> from_json(const value& object);

  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] bool contains(std::string_view key) const;
  /// What `key` holds, or an empty reference if the key is absent.
  [[nodiscard]] value_ref find(std::string_view key) const;
  /// The value of `key` (a list key is materialized once per version, then cached), or nullptr.
  [[nodiscard]] const value* get_if(std::string_view key) const;
  /// A copy of the value of `key`, or null if the key is absent.
  [[nodiscard]] value get(std::string_view key) const;
  /// The keys in sorted order.
  [[nodiscard]] std::vector<std::string> keys() const;

  /// Sets `key` to `v` (an array becomes a persistent list).
  [[nodiscard]] state update(std::string_view key, value v) const;
  /// Appends `item` to the list at `key`, creating the list if the key is absent. Fails with
  /// `graph_errc::type_mismatch` if the key holds something other than a list.
  [[nodiscard]] result<state> append(std::string_view key, value item) const;
  /// Appends every element of the array `items`, as `append` does.
  [[nodiscard]] result<state> extend(std::string_view key, const value& items) const;
  /// Adds `by` to the integer at `key` (absent counts as 0). Fails on a non-integer or overflow.
  [[nodiscard]] result<state> increment(std::string_view key, std::int64_t by) const;
  /// Removes the listed keys (absent keys are ignored).
  [[nodiscard]] state wipe(std::initializer_list<std::string_view> keys) const;
  [[nodiscard]] state wipe(const std::vector<std::string>& keys) const;
  /// Keeps only the listed keys.
  [[nodiscard]] state subset(const std::vector<std::string>& keys) const;
  /// Every key of `other` overrides this state's.
  [[nodiscard]] state merge(const state& other) const;
  /// Applies every op of `delta` in order, all or nothing. Errors name the op's key.
  [[nodiscard]] result<state> apply(const state_delta& delta) const;

  /// The whole state as one JSON object (copies every value; for edges such as the API).
  [[nodiscard]] value to_json() const;
  [[nodiscard]] bool operator==(const state& other) const;
  /// True if both states hold the very same stored value for `key` (no copy was made).
  [[nodiscard]] bool shares_key_with(const state& other, std::string_view key) const;

 private:
  explicit state(std::shared_ptr<const detail::state_impl> impl);
  std::shared_ptr<const detail::state_impl> impl_;
};

}  // namespace choir::graph
