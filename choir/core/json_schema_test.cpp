#include "choir/core/json_schema.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace choir {
namespace {

json_schema compiled(std::string_view schema) {
  auto r = json_schema::compile(value::parse(schema));
  if (!r.ok()) {
    ADD_FAILURE() << "does not compile: " << r.err().message;
    return *json_schema::compile(value(false));
  }
  return std::move(r).value();
}

/// The compile error for `schema`, or "(compiled)".
std::string compile_error_of(const value& schema) {
  auto r = json_schema::compile(schema);
  if (r.ok()) return "(compiled)";
  EXPECT_EQ(r.err().code, make_error_code(core_errc::invalid_argument));
  return r.err().message;
}
std::string compile_error(std::string_view schema) { return compile_error_of(value::parse(schema)); }

/// The violations of `instance`, as `describe` puts them ("" when valid); also checks that
/// `accepts` agrees with `validate`.
std::string errors(const json_schema& schema, const value& instance) {
  const auto violations = schema.validate(instance);
  EXPECT_EQ(schema.accepts(instance), violations.empty()) << dump_json(instance);
  return describe(violations);
}
std::string errors(std::string_view schema, std::string_view instance) {
  return errors(compiled(schema), value::parse(instance));
}

TEST(JsonSchema, TrueAndTheEmptySchemaAcceptEverything) {
  for (const char* instance : {"null", "1", "\"x\"", "[1,2]", R"({"a":{}})"}) {
    EXPECT_EQ(errors("true", instance), "") << instance;
    EXPECT_EQ(errors("{}", instance), "") << instance;
  }
}

TEST(JsonSchema, FalseRejectsEverything) {
  EXPECT_EQ(errors("false", "null"), "(root): no value is allowed here");
  EXPECT_EQ(errors("false", "{}"), "(root): no value is allowed here");
}

TEST(JsonSchema, TypeNamesOneType) {
  EXPECT_EQ(errors(R"({"type":"string"})", R"("hi")"), "");
  EXPECT_EQ(errors(R"({"type":"string"})", "3"), "(root): expected string, got integer");
  EXPECT_EQ(errors(R"({"type":"object"})", "[]"), "(root): expected object, got array");
  EXPECT_EQ(errors(R"({"type":"boolean"})", "null"), "(root): expected boolean, got null");
}

TEST(JsonSchema, TypeAcceptsAnyOfAListOfTypes) {
  const auto schema = compiled(R"({"type":["string","null","array"]})");
  EXPECT_EQ(errors(schema, value()), "");
  EXPECT_EQ(errors(schema, value("x")), "");
  EXPECT_EQ(errors(schema, value(2.5)), "(root): expected string, null or array, got number");
}

TEST(JsonSchema, IntegerAcceptsFloatsWithAnIntegralValue) {
  const auto schema = compiled(R"({"type":"integer"})");
  EXPECT_EQ(errors(schema, value::parse("1.0")), "");
  EXPECT_EQ(errors(schema, value::parse("-7")), "");
  EXPECT_EQ(errors(schema, value::parse("18446744073709551615")), "");
  EXPECT_EQ(errors(schema, value::parse("1.5")), "(root): expected integer, got number");
}

TEST(JsonSchema, NumberAcceptsIntegers) {
  EXPECT_EQ(errors(R"({"type":"number"})", "3"), "");
  EXPECT_EQ(errors(R"({"type":"number"})", "\"3\""), "(root): expected number, got string");
}

TEST(JsonSchema, EnumComparesAsJsonWhereOneEqualsOnePointZero) {
  const auto schema = compiled(R"({"enum":[1, "a", {"k":[2, null]}]})");
  EXPECT_EQ(errors(schema, value::parse("1.0")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"k":[2.0, null]})")), "");
  EXPECT_EQ(errors(schema, value::parse("true")), R"((root): must be one of [1,"a",{"k":[2,null]}])");
  EXPECT_EQ(errors(schema, value::parse(R"({"k":[2]})")), R"((root): must be one of [1,"a",{"k":[2,null]}])");
}

TEST(JsonSchema, ConstRequiresAnEqualValue) {
  EXPECT_EQ(errors(R"({"const":{"a":[1]}})", R"({"a":[1]})"), "");
  EXPECT_EQ(errors(R"({"const":"x"})", R"("y")"), R"((root): must equal "x")");
  EXPECT_EQ(errors(R"({"const":false})", "0"), "(root): must equal false");
}

TEST(JsonSchema, PropertiesApplyToThePropertiesPresent) {
  const auto schema = compiled(R"({"properties":{"age":{"type":"integer"},"name":{"type":"string"}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"age":3})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"age":"3","other":1})")), "/age: expected integer, got string");
  EXPECT_EQ(errors(schema, value::parse("[1]")), "");  // applies to objects only
}

TEST(JsonSchema, RequiredNamesEachMissingProperty) {
  const auto schema = compiled(R"({"required":["a","b","c"]})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1,"b":null,"c":0})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"b":1})")),
            R"((root): missing required property "a"; (root): missing required property "c")");
  EXPECT_EQ(errors(schema, value::parse(R"("not an object")")), "");
}

TEST(JsonSchema, AdditionalPropertiesFalseRejectsUndeclaredProperties) {
  const auto schema = compiled(R"({"properties":{"a":{}},"additionalProperties":false})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1,"b":2,"c/d":3})")),
            "/b: property not allowed; /c~1d: property not allowed");
}

TEST(JsonSchema, AdditionalPropertiesSchemaAppliesOnlyToUndeclaredProperties) {
  const auto schema = compiled(R"({"properties":{"a":{"type":"string"}},"additionalProperties":{"type":"integer"}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x","b":2})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x","b":"y"})")), "/b: expected integer, got string");
}

TEST(JsonSchema, PatternPropertiesApplyByNameAndAreNotAdditional) {
  const auto schema = compiled(
      R"({"patternProperties":{"^x-":{"type":"string"},"id$":{"type":"integer"}},"additionalProperties":false})");
  EXPECT_EQ(errors(schema, value::parse(R"({"x-trace":"t","user_id":4})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"x-id":"t"})")), "/x-id: expected integer, got string");
  EXPECT_EQ(errors(schema, value::parse(R"({"y":1})")), "/y: property not allowed");
}

TEST(JsonSchema, PropertyNamesChecksEveryName) {
  const auto schema = compiled(R"({"propertyNames":{"pattern":"^[a-z]+$","maxLength":5}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"abc":1,"xyz":[]})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"abc":1,"Bad":2,"toolong":3})")),
            R"(/Bad: invalid property name: does not match pattern "^[a-z]+$"; )"
            R"(/toolong: invalid property name: must be at most 5 characters long (is 7))");
}

TEST(JsonSchema, MinAndMaxPropertiesCountProperties) {
  const auto schema = compiled(R"({"minProperties":1,"maxProperties":2})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1})")), "");
  EXPECT_EQ(errors(schema, value::parse("{}")), "(root): must have at least 1 property (has 0)");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1,"b":2,"c":3})")), "(root): must have at most 2 properties (has 3)");
}

TEST(JsonSchema, DependentRequiredAppliesWhenItsPropertyIsPresent) {
  const auto schema = compiled(R"({"dependentRequired":{"card":["billing_address","name"]}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"name":"x"})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"card":1,"name":"x","billing_address":"y"})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"card":1,"name":"x"})")),
            R"((root): property "billing_address" is required when "card" is present)");
}

TEST(JsonSchema, DependentSchemasApplyWhenTheirPropertyIsPresent) {
  const auto schema = compiled(R"({"dependentSchemas":{"card":{"required":["cvc"]}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"cvc":1})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"card":1})")), R"((root): missing required property "cvc")");
}

TEST(JsonSchema, Draft07DependenciesTakesNamesOrASchema) {
  const auto schema = compiled(R"({"$schema":"http://json-schema.org/draft-07/schema#",
    "dependencies":{"a":["b"],"c":{"properties":{"d":{"type":"string"}}}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1,"b":2,"c":3,"d":"x"})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1})")), R"((root): property "b" is required when "a" is present)");
  EXPECT_EQ(errors(schema, value::parse(R"({"c":1,"d":2})")), "/d: expected string, got integer");
}

TEST(JsonSchema, ItemsInDraft2020AppliesAfterPrefixItems) {
  const auto schema = compiled(R"({"prefixItems":[{"type":"string"},{"type":"boolean"}],"items":{"type":"integer"}})");
  EXPECT_EQ(errors(schema, value::parse(R"(["a"])")), "");
  EXPECT_EQ(errors(schema, value::parse(R"(["a",true,1,2])")), "");
  EXPECT_EQ(errors(schema, value::parse(R"([1,true,"x"])")),
            "/0: expected string, got integer; /2: expected integer, got string");
}

TEST(JsonSchema, ItemsFalseAfterPrefixItemsClosesATuple) {
  const auto schema = compiled(R"({"prefixItems":[{},{}],"items":false})");
  EXPECT_EQ(errors(schema, value::parse("[1,2]")), "");
  EXPECT_EQ(errors(schema, value::parse("[1,2,3]")), "/2: item not allowed (the array may have at most 2 items)");
}

TEST(JsonSchema, Draft07ArrayItemsIsATupleWithAdditionalItems) {
  const auto schema = compiled(R"({"$schema":"http://json-schema.org/draft-07/schema#",
    "items":[{"type":"string"}],"additionalItems":{"type":"integer"}})");
  EXPECT_EQ(errors(schema, value::parse(R"(["a",1,2])")), "");
  EXPECT_EQ(errors(schema, value::parse(R"([1,"b"])")),
            "/0: expected string, got integer; /1: expected integer, got string");
}

TEST(JsonSchema, Draft07SchemaItemsAppliesToEveryItemAndIgnoresAdditionalItems) {
  const auto schema = compiled(R"({"$schema":"http://json-schema.org/draft-07/schema",
    "items":{"type":"integer"},"additionalItems":false})");
  EXPECT_EQ(errors(schema, value::parse("[1,2,3]")), "");
  EXPECT_EQ(errors(schema, value::parse(R"([1,"x"])")), "/1: expected integer, got string");
}

TEST(JsonSchema, TupleKeywordsOfTheOtherDraftAreCompileErrors) {
  EXPECT_EQ(compile_error(R"({"items":[{"type":"string"}]})"),
            "#/items: must be a schema in draft 2020-12 (use \"prefixItems\" for a tuple, or declare \"$schema\": "
            "\"http://json-schema.org/draft-07/schema#\")");
  EXPECT_EQ(compile_error(R"({"additionalItems":false})")
                .rfind("#/additionalItems: additionalItems is not a draft "
                       "2020-12 keyword",
                       0),
            0u);
  EXPECT_EQ(compile_error(R"({"$schema":"http://json-schema.org/draft-07/schema#","prefixItems":[{}]})")
                .rfind("#/prefixItems: prefixItems needs draft 2020-12", 0),
            0u);
}

TEST(JsonSchema, ContainsNeedsOneMatchingItem) {
  const auto schema = compiled(R"({"contains":{"type":"integer"}})");
  EXPECT_EQ(errors(schema, value::parse(R"(["a",3])")), "");
  EXPECT_EQ(errors(schema, value::parse(R"(["a"])")),
            R"((root): must contain an item that matches the "contains" schema)");
  EXPECT_EQ(errors(schema, value::parse("[]")), R"((root): must contain an item that matches the "contains" schema)");
}

TEST(JsonSchema, MinAndMaxContainsBoundTheMatchingItems) {
  const auto schema = compiled(R"({"contains":{"const":1},"minContains":2,"maxContains":3})");
  EXPECT_EQ(errors(schema, value::parse("[1,2,1]")), "");
  EXPECT_EQ(errors(schema, value::parse("[1,2]")),
            R"((root): must contain at least 2 items that match the "contains" schema (has 1))");
  EXPECT_EQ(errors(schema, value::parse("[1,1,1,1]")),
            R"((root): must contain at most 3 items that match the "contains" schema (has 4))");
  EXPECT_EQ(errors(R"({"contains":{"const":1},"minContains":0})", "[]"), "");
}

TEST(JsonSchema, MinAndMaxItemsCountItems) {
  const auto schema = compiled(R"({"minItems":1,"maxItems":2})");
  EXPECT_EQ(errors(schema, value::parse("[0,0]")), "");
  EXPECT_EQ(errors(schema, value::parse("[]")), "(root): must have at least 1 item (has 0)");
  EXPECT_EQ(errors(schema, value::parse("[1,2,3]")), "(root): must have at most 2 items (has 3)");
}

TEST(JsonSchema, UniqueItemsComparesAsJson) {
  const auto schema = compiled(R"({"uniqueItems":true})");
  EXPECT_EQ(errors(schema, value::parse(R"([1,"1",[1],{"a":1},true])")), "");
  EXPECT_EQ(errors(schema, value::parse("[1,2,1.0]")), "(root): items 0 and 2 are equal (uniqueItems)");
  EXPECT_EQ(errors(schema, value::parse(R"([{"a":1,"b":[2]},{"b":[2.0],"a":1}])")),
            "(root): items 0 and 1 are equal (uniqueItems)");
  EXPECT_EQ(errors(R"({"uniqueItems":false})", "[1,1]"), "");
}

TEST(JsonSchema, StringLengthsCountCodePointsNotBytes) {
  const auto schema = compiled(R"({"minLength":2,"maxLength":3})");
  EXPECT_EQ(errors(schema, value("h\xC3\xA9")), "");                         // "hé": 3 bytes, 2 code points
  EXPECT_EQ(errors(schema, value("\xF0\x9F\x98\x80\xF0\x9F\x98\x80")), "");  // two emoji: 8 bytes
  EXPECT_EQ(errors(schema, value("\xC3\xA9")), "(root): must be at least 2 characters long (is 1)");
  EXPECT_EQ(errors(schema, value("abcd")), "(root): must be at most 3 characters long (is 4)");
}

TEST(JsonSchema, PatternSearchesAnywhereUnlessAnchored) {
  EXPECT_EQ(errors(R"({"pattern":"b+"})", R"("abbc")"), "");
  EXPECT_EQ(errors(R"({"pattern":"^a"})", R"("ba")"), R"((root): does not match pattern "^a")");
  EXPECT_EQ(errors(R"({"pattern":"a$"})", R"("ab")"), R"((root): does not match pattern "a$")");
  EXPECT_EQ(errors(R"({"pattern":"^\\d{3}-\\d{4}$"})", R"("555-1234")"), "");
  EXPECT_EQ(errors(R"({"pattern":"x|^y$"})", R"("zy")"), R"((root): does not match pattern "x|^y$")");
  EXPECT_EQ(errors(R"({"pattern":"^a"})", "12"), "");  // applies to strings only
}

TEST(JsonSchema, PatternsMatchCodePoints) {
  const auto schema = compiled(R"({"pattern":"^.\\u00e9.$"})");
  EXPECT_EQ(errors(schema, value("\xF0\x9F\x98\x80\xC3\xA9z")), "");  // emoji, é, z
  EXPECT_EQ(errors(schema, value("\xC3\xA9z")), "(root): does not match pattern \"^.\\\\u00e9.$\"");
}

TEST(JsonSchema, PatternsRunInLinearTimeOnCatastrophicInputs) {
  const auto schema = compiled(R"({"pattern":"^(a+)+$"})");
  EXPECT_EQ(errors(schema, value(std::string(5000, 'a') + "b")), R"((root): does not match pattern "^(a+)+$")");
}

TEST(JsonSchema, LongStringsAreNotRunThroughAPattern) {
  const auto schema = compiled(R"({"pattern":"a"})");
  EXPECT_EQ(errors(schema, value("bab")), "");
  EXPECT_EQ(errors(schema, value(std::string(json_schema::max_pattern_input + 1, 'a'))),
            R"((root): string too long to match pattern "a" (more than 65536 bytes))");
}

TEST(JsonSchema, PatternsRunOnLongStrings) {
  const auto schema = compiled(R"({"pattern":"^[a-z]+$"})");
  EXPECT_EQ(errors(schema, value(std::string(8192, 'q'))), "");
  EXPECT_EQ(errors(schema, value(std::string(8192, 'q') + "!")), R"((root): does not match pattern "^[a-z]+$")");
}

TEST(JsonSchema, PatternsWithALookaheadTakeShorterStrings) {
  const auto schema = compiled(R"({"pattern":"^(?=.*[A-Z])(?=.*\\d).{8,}$"})");
  EXPECT_EQ(errors(schema, value("Secret123")), "");
  EXPECT_EQ(errors(schema, value("secret123")), R"((root): does not match pattern "^(?=.*[A-Z])(?=.*\\d).{8,}$")");
  EXPECT_EQ(errors(schema, value("A1" + std::string(600, 'x'))),
            R"((root): string too long to match pattern "^(?=.*[A-Z])(?=.*\\d).{8,}$" (more than 512 bytes))");
}

TEST(JsonSchema, BadPatternsAreCompileErrors) {
  EXPECT_EQ(compile_error(R"({"properties":{"p":{"pattern":"a("}}})")
                .rfind(R"(#/properties/p/pattern: pattern "a(" is not a valid ECMAScript regular expression ()", 0),
            0u);
  EXPECT_EQ(compile_error(R"({"patternProperties":{"[":{}}})")
                .rfind(R"(#/patternProperties/[: pattern "[" is not a valid ECMAScript regular expression)", 0),
            0u);
  EXPECT_EQ(compile_error(R"({"pattern":"(a)\\1"})"),
            R"(#/pattern: pattern "(a)\\1" uses a back-reference, which is not supported)");
  EXPECT_EQ(compile_error(R"({"pattern":"(?:a?){1000}{1000}"})"),
            R"(#/pattern: pattern "(?:a?){1000}{1000}" is too complex (its repetitions expand past 2000 states))");
  EXPECT_EQ(compile_error(R"({"pattern":"a{1,99999999999999999999}"})"),
            R"(#/pattern: pattern "a{1,99999999999999999999}" has a number longer than 9 digits)");
  EXPECT_EQ(compile_error(R"({"pattern":"(a)\\12345678901"})"),
            R"(#/pattern: pattern "(a)\\12345678901" has a number longer than 9 digits)");
  EXPECT_EQ(compile_error_of(value{{"pattern", std::string(5000, 'a')}}), "#/pattern: pattern longer than 4096 bytes");
}

TEST(JsonSchema, MinimumAndMaximumAreInclusive) {
  const auto schema = compiled(R"({"minimum":1,"maximum":2.5})");
  EXPECT_EQ(errors(schema, value(1)), "");
  EXPECT_EQ(errors(schema, value(2.5)), "");
  EXPECT_EQ(errors(schema, value(0.5)), "(root): must be >= 1");
  EXPECT_EQ(errors(schema, value(3)), "(root): must be <= 2.5");
  EXPECT_EQ(errors(schema, value("9")), "");  // applies to numbers only
}

TEST(JsonSchema, ExclusiveBoundsAreStrict) {
  const auto schema = compiled(R"({"exclusiveMinimum":0,"exclusiveMaximum":10})");
  EXPECT_EQ(errors(schema, value(0.001)), "");
  EXPECT_EQ(errors(schema, value(0)), "(root): must be > 0");
  EXPECT_EQ(errors(schema, value(10.0)), "(root): must be < 10");
}

TEST(JsonSchema, Draft04BooleanExclusiveBoundsNeedDraft04) {
  const auto schema = compiled(R"({"$schema":"http://json-schema.org/draft-04/schema#",
    "minimum":0,"exclusiveMinimum":true,"maximum":5,"exclusiveMaximum":false})");
  EXPECT_EQ(errors(schema, value(5)), "");
  EXPECT_EQ(errors(schema, value(0)), "(root): must be > 0");
  EXPECT_EQ(compile_error(R"({"minimum":0,"exclusiveMinimum":true})"),
            "#/exclusiveMinimum: must be a number (the boolean form is draft-04's; declare \"$schema\": "
            "\"http://json-schema.org/draft-04/schema#\" to use it)");
}

TEST(JsonSchema, NumbersCompareExactlyAcrossIntegersAndFloats) {
  // 2^53 + 1 is not a double: compared as doubles, it would equal the bound.
  const auto schema = compiled(R"({"maximum":9007199254740992})");
  EXPECT_EQ(errors(schema, value::parse("9007199254740992.0")), "");
  EXPECT_EQ(errors(schema, value::parse("9007199254740993")), "(root): must be <= 9007199254740992");
  EXPECT_EQ(errors(R"({"minimum":-9223372036854775808})", "-9223372036854775808"), "");
  EXPECT_EQ(errors(R"({"minimum":0})", "18446744073709551615"), "");
  EXPECT_EQ(errors(R"({"maximum":-1})", "-1.5"), "");
}

TEST(JsonSchema, MultipleOfToleratesDecimalFractionsInBinary) {
  EXPECT_EQ(errors(R"({"multipleOf":0.1})", "0.3"), "");
  EXPECT_EQ(errors(R"({"multipleOf":0.01})", "19.99"), "");
  EXPECT_EQ(errors(R"({"multipleOf":0.1})", "0.35"), "(root): must be a multiple of 0.1");
  EXPECT_EQ(errors(R"({"multipleOf":5})", "-15"), "");
  EXPECT_EQ(errors(R"({"multipleOf":5})", "18446744073709551615"), "");
  EXPECT_EQ(errors(R"({"multipleOf":2})", "7"), "(root): must be a multiple of 2");
  EXPECT_EQ(errors(R"({"multipleOf":0.123456789})", "1e308"), "(root): must be a multiple of 0.123456789");
  EXPECT_EQ(compile_error(R"({"multipleOf":0})"), "#/multipleOf: must be greater than 0");
}

TEST(JsonSchema, AllOfNeedsEverySchema) {
  const auto schema = compiled(R"({"allOf":[{"type":"integer"},{"minimum":3}]})");
  EXPECT_EQ(errors(schema, value(4)), "");
  EXPECT_EQ(errors(schema, value(2.5)), "(root): expected integer, got number; (root): must be >= 3");
}

TEST(JsonSchema, AnyOfNeedsOneSchemaAndSaysWhyEachFailed) {
  const auto schema = compiled(R"({"properties":{"n":{"anyOf":[{"type":"string"},{"type":"null"}]}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"n":null})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"n":"x"})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"n":5})")),
            "/n: matches none of the anyOf alternatives ([0] expected string, got integer; [1] expected null, got "
            "integer)");
}

TEST(JsonSchema, AnyOfExplanationsNameNestedPointers) {
  const auto schema = compiled(R"({"anyOf":[{"required":["a"]},{"properties":{"b":{"type":"string"}}}]})");
  EXPECT_EQ(errors(schema, value::parse(R"({"b":1})")),
            R"((root): matches none of the anyOf alternatives ([0] missing required property "a"; )"
            R"([1] /b: expected string, got integer))");
}

TEST(JsonSchema, OneOfNeedsExactlyOneSchema) {
  const auto schema = compiled(R"({"oneOf":[{"type":"integer"},{"minimum":2}]})");
  EXPECT_EQ(errors(schema, value(1)), "");
  EXPECT_EQ(errors(schema, value(2.5)), "");
  EXPECT_EQ(errors(schema, value(3)), "(root): matches more than one oneOf alternative ([0] and [1])");
  EXPECT_EQ(errors(schema, value(1.5)),
            "(root): matches none of the oneOf alternatives ([0] expected integer, got number; [1] must be >= 2)");
}

TEST(JsonSchema, NotInvertsASchema) {
  const auto schema = compiled(R"({"not":{"type":"null"}})");
  EXPECT_EQ(errors(schema, value(0)), "");
  EXPECT_EQ(errors(schema, value()), R"((root): must not match the "not" schema)");
}

TEST(JsonSchema, IfThenElseAppliesTheBranchTheConditionPicks) {
  const auto schema = compiled(R"({"if":{"properties":{"kind":{"const":"circle"}}},
    "then":{"required":["radius"]},"else":{"required":["width"]}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"kind":"circle","radius":1})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"kind":"square","width":1})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"kind":"circle","width":1})")),
            R"((root): missing required property "radius")");
  EXPECT_EQ(errors(schema, value::parse(R"({"kind":"square"})")), R"((root): missing required property "width")");
}

TEST(JsonSchema, RefResolvesDefsAndDefinitions) {
  const auto schema = compiled(R"({"$defs":{"id":{"type":"integer"}},"definitions":{"name":{"type":"string"}},
    "properties":{"id":{"$ref":"#/$defs/id"},"name":{"$ref":"#/definitions/name"}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"id":1,"name":"x"})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"id":"1","name":2})")),
            "/id: expected integer, got string; /name: expected string, got integer");
}

TEST(JsonSchema, RefDecodesPointerEscapesAndPercentEncoding) {
  const auto schema = compiled(R"({"$defs":{"a/b~c d":{"type":"integer"}},"$ref":"#/$defs/a~1b~0c%20d"})");
  EXPECT_EQ(errors(schema, value(1)), "");
  EXPECT_EQ(errors(schema, value("x")), "(root): expected integer, got string");
}

TEST(JsonSchema, RefIntoAnArrayByIndex) {
  const auto schema = compiled(R"({"anyOf":[{"type":"integer"}],"properties":{"a":{"$ref":"#/anyOf/0"}}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x"})")).rfind("/a: expected integer, got string", 0), 0u);
}

constexpr std::string_view tree_schema = R"({
  "$ref": "#/$defs/node",
  "$defs": {"node": {"type": "object", "required": ["name"],
    "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}})";

TEST(JsonSchema, RecursiveRefValidatesATree) {
  const auto schema = compiled(tree_schema);
  EXPECT_EQ(errors(schema, value::parse(R"({"name":"root","children":[{"name":"a"},{"name":"b","children":[]}]})")),
            "");
  EXPECT_EQ(errors(schema, value::parse(R"({"name":"r","children":[{"name":"a","children":[{"name":1},{}]}]})")),
            R"(/children/0/children/0/name: expected string, got integer; )"
            R"(/children/0/children/1: missing required property "name")");
}

TEST(JsonSchema, RecursiveRefToTheRootValidatesDeepInstances) {
  const auto schema = compiled(R"({"type":"object","properties":{"next":{"$ref":"#"}},"additionalProperties":false})");
  value deep = value::object();
  for (int i = 0; i < 200; ++i) deep = value{{"next", deep}};
  EXPECT_EQ(errors(schema, deep), "");
  value bad = value{{"oops", 1}};
  for (int i = 0; i < 3; ++i) bad = value{{"next", bad}};
  EXPECT_EQ(errors(schema, bad), "/next/next/next/oops: property not allowed");
}

TEST(JsonSchema, RefBesideOtherKeywordsAppliesBothInDraft2020) {
  const auto schema = compiled(R"({"$defs":{"int":{"type":"integer"}},"$ref":"#/$defs/int","minimum":5})");
  EXPECT_EQ(errors(schema, value(6)), "");
  EXPECT_EQ(errors(schema, value(4)), "(root): must be >= 5");
}

TEST(JsonSchema, RefReplacesTheKeywordsBesideItInDraft07) {
  const auto schema = compiled(R"({"$schema":"http://json-schema.org/draft-07/schema#",
    "definitions":{"int":{"type":"integer"}},"$ref":"#/definitions/int","minimum":5})");
  EXPECT_EQ(errors(schema, value(4)), "");
  EXPECT_EQ(errors(schema, value("x")), "(root): expected integer, got string");
}

TEST(JsonSchema, RefLoopThatNeverReachesASchemaIsACompileError) {
  EXPECT_EQ(compile_error(R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})"),
            "#/$defs/a: $ref loop: #/$defs/a -> #/$defs/a applies the same schemas to the same value forever");
  EXPECT_EQ(compile_error(R"({"$ref":"#"})"),
            "#: $ref loop: # -> # applies the same schemas to the same value forever");
}

TEST(JsonSchema, LoopsThroughApplicatorsAreCompileErrorsToo) {
  EXPECT_EQ(compile_error(R"({"anyOf":[{"type":"string"},{"$ref":"#"}]})"),
            "#: $ref loop: # -> #/anyOf/1 -> # applies the same schemas to the same value forever");
  EXPECT_EQ(compile_error(R"({"$defs":{"a":{"allOf":[{"$ref":"#/$defs/b"}]},"b":{"not":{"$ref":"#/$defs/a"}}},
                             "$ref":"#/$defs/a"})")
                .rfind("#/$defs/a: $ref loop: #/$defs/a -> #/$defs/a/allOf/0 -> #/$defs/b -> ", 0),
            0u);
}

TEST(JsonSchema, RefsThatCannotBeResolvedAreCompileErrors) {
  EXPECT_EQ(compile_error(R"({"properties":{"a":{"$ref":"https://example.com/other.json"}}})"),
            R"(#/properties/a/$ref: remote $ref not supported: "https://example.com/other.json")");
  EXPECT_EQ(compile_error(R"({"$ref":"other.json#/$defs/x"})"),
            R"(#/$ref: remote $ref not supported: "other.json#/$defs/x")");
  EXPECT_EQ(compile_error(R"({"$ref":"#/$defs/missing"})"), R"(#/$ref: $ref target "#/$defs/missing" does not exist)");
  EXPECT_EQ(compile_error(R"({"$ref":"#node"})"),
            R"(#/$ref: $ref to an anchor ("#node") not supported; use a JSON pointer such as "#/$defs/name")");
  EXPECT_EQ(compile_error(R"({"$ref":"#/a~2"})"), R"(#/$ref: malformed JSON pointer in $ref "#/a~2")");
  EXPECT_EQ(compile_error(R"({"$ref":"#/a%2"})"), R"(#/$ref: malformed percent-encoding in $ref "#/a%2")");
  EXPECT_EQ(compile_error(R"({"$defs":{"n":3},"$ref":"#/$defs/n"})"),
            "#/$defs/n: a schema must be an object or a boolean, got integer");
}

TEST(JsonSchema, RefThroughTheRootIdIsLocal) {
  const auto schema = compiled(R"({"$id":"https://example.com/s.json","$defs":{"x":{"type":"string"}},
    "$ref":"https://example.com/s.json#/$defs/x"})");
  EXPECT_EQ(errors(schema, value(1)), "(root): expected string, got integer");
}

TEST(JsonSchema, KeywordsThatWouldChangeTheVerdictButAreNotSupportedAreCompileErrors) {
  EXPECT_EQ(compile_error(R"({"items":{"$dynamicRef":"#meta"}})"), "#/items/$dynamicRef: $dynamicRef is not supported");
  EXPECT_EQ(compile_error(R"({"$recursiveRef":"#"})"), "#/$recursiveRef: $recursiveRef is not supported");
  EXPECT_EQ(compile_error(R"({"$defs":{"x":{"$id":"x.json"}}})"),
            "#/$defs/x/$id: a schema resource embedded in another ($id in a subschema) is not supported");
}

TEST(JsonSchema, UnevaluatedPropertiesSeesThroughAllOfAndRef) {
  const auto schema = compiled(R"({"$defs":{"named":{"properties":{"name":{"type":"string"}}}},
    "allOf":[{"$ref":"#/$defs/named"},{"properties":{"age":{}}}],"unevaluatedProperties":false})");
  EXPECT_EQ(errors(schema, value::parse(R"({"name":"x","age":3})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"name":"x","extra":1})")),
            "/extra: property not allowed (unevaluatedProperties)");
}

TEST(JsonSchema, UnevaluatedPropertiesIgnoresAnyOfAlternativesThatFail) {
  const auto schema = compiled(R"({"anyOf":[{"properties":{"a":{"type":"string"}},"required":["a"]},
    {"properties":{"b":{}},"required":["b"]}],"unevaluatedProperties":false})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x","b":1})")), "");
  // "a" is an integer, so the first alternative fails and does not count as evaluating "a".
  EXPECT_EQ(errors(schema, value::parse(R"({"a":1,"b":1})")), "/a: property not allowed (unevaluatedProperties)");
}

TEST(JsonSchema, UnevaluatedPropertiesSchemaAppliesToTheRest) {
  const auto schema = compiled(R"({"properties":{"a":{}},"unevaluatedProperties":{"type":"integer"}})");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x","b":2})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"a":"x","b":"y"})")), "/b: expected integer, got string");
}

TEST(JsonSchema, UnevaluatedItemsCountsPrefixItemsAndContains) {
  const auto schema = compiled(R"({"prefixItems":[{"type":"string"}],"allOf":[{"contains":{"type":"integer"}}],
    "unevaluatedItems":false})");
  EXPECT_EQ(errors(schema, value::parse(R"(["a",1,2])")), "");
  EXPECT_EQ(errors(schema, value::parse(R"(["a",1,true])")), "/2: item not allowed (unevaluatedItems)");
}

TEST(JsonSchema, AnnotationsAndUnknownKeywordsAreIgnored) {
  const auto schema = compiled(R"({"title":"T","description":"D","$comment":"c","examples":[1],"default":"x",
    "format":"email","x-internal":{"type":"integer"},"deprecated":true,"readOnly":true,"contentMediaType":"text/html",
    "$anchor":"top","$id":"https://example.com/t.json","type":"string"})");
  EXPECT_EQ(errors(schema, value("not an email")), "");
}

TEST(JsonSchema, DialectComesFromSchemaAndDefaultsTo2020) {
  for (const char* uri : {"http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft-07/schema",
                          "http://json-schema.org/draft-06/schema#", "https://json-schema.org/draft/2019-09/schema"}) {
    const value schema{{"$schema", uri}, {"items", value::array({value::object()})}};
    EXPECT_EQ(compile_error_of(schema), "(compiled)") << uri;
  }
  EXPECT_EQ(compile_error(R"({"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[]})"),
            "(compiled)");
  EXPECT_EQ(compile_error(R"({"$schema":"http://json-schema.org/draft-03/schema#"})"),
            R"(#/$schema: unsupported $schema "http://json-schema.org/draft-03/schema#" )"
            R"((supported: draft 2020-12, 2019-09, draft-07, draft-06, draft-04))");
}

TEST(JsonSchema, MalformedKeywordsNameTheirLocation) {
  EXPECT_EQ(compile_error("42"), "#: a schema must be an object or a boolean, got integer");
  EXPECT_EQ(compile_error(R"({"properties":{"age":{"minimum":"3"}}})"),
            "#/properties/age/minimum: must be a number, got string");
  EXPECT_EQ(compile_error(R"({"type":"int"})"),
            R"(#/type: "int" is not a JSON type (null, boolean, integer, number, string, array, object))");
  EXPECT_EQ(compile_error(R"({"type":["string",3]})"), "#/type/1: must be a type name, got integer");
  EXPECT_EQ(compile_error(R"({"required":["a",1]})"), "#/required/1: must be a string, got integer");
  EXPECT_EQ(compile_error(R"({"minLength":-1})"), "#/minLength: must be a non-negative integer, got -1");
  EXPECT_EQ(compile_error(R"({"maxItems":1.5})"), "#/maxItems: must be a non-negative integer, got 1.5");
  EXPECT_EQ(compile_error(R"({"anyOf":[]})"), "#/anyOf: must not be an empty array");
  EXPECT_EQ(compile_error(R"({"allOf":{}})"), "#/allOf: must be an array of schemas, got object");
  EXPECT_EQ(compile_error(R"({"items":{"properties":{"a":"string"}}})"),
            "#/items/properties/a: a schema must be an object or a boolean, got string");
  EXPECT_EQ(compile_error(R"({"enum":"a"})"), "#/enum: must be an array");
  EXPECT_EQ(compile_error(R"({"uniqueItems":"yes"})"), "#/uniqueItems: must be a boolean");
}

TEST(JsonSchema, UnreferencedDefinitionsAreStillChecked) {
  EXPECT_EQ(
      compile_error(R"({"$defs":{"unused":{"type":"bogus"}}})"),
      R"(#/$defs/unused/type: "bogus" is not a JSON type (null, boolean, integer, number, string, array, object))");
}

TEST(JsonSchema, SchemasNestedTooDeepAreCompileErrors) {
  value schema = true;
  for (int i = 0; i < 200; ++i) schema = value{{"items", schema}};  // 200 levels: fine
  EXPECT_EQ(compile_error_of(schema), "(compiled)");
  for (int i = 0; i < 100; ++i) schema = value{{"items", schema}};
  EXPECT_EQ(compile_error_of(schema), "#: nested more than 256 deep");
}

TEST(JsonSchema, InstancesNestedTooDeepAreOneViolation) {
  const auto schema = compiled("{}");
  value deep = value::array();
  for (int i = 0; i < 255; ++i) deep = value::array({deep});
  EXPECT_EQ(errors(schema, deep), "");  // 256 levels
  deep = value::array({deep});
  EXPECT_EQ(errors(schema, deep), "(root): nested more than 256 deep");
}

TEST(JsonSchema, ReportsEveryViolationWithItsPointer) {
  const auto schema = compiled(R"({"type":"object","properties":{
    "a/b":{"type":"string"},"m~n":{"type":"string"},"list":{"items":{"properties":{"x":{"type":"integer"}}}}}})");
  const auto violations = schema.validate(value::parse(R"({"a/b":1,"m~n":2,"list":[{"x":1},{"x":"no"},{"x":true}]})"));
  EXPECT_EQ(violations, (std::vector<schema_violation>{{"/a~1b", "expected string, got integer"},
                                                       {"/list/1/x", "expected integer, got string"},
                                                       {"/list/2/x", "expected integer, got boolean"},
                                                       {"/m~0n", "expected string, got integer"}}));
}

TEST(JsonSchema, ViolationsAreCappedAtTheMaximum) {
  const auto schema = compiled(R"({"items":{"type":"string"}})");
  const auto violations = schema.validate(value(std::vector<int>(1000, 1)));
  ASSERT_EQ(violations.size(), json_schema::max_violations);
  EXPECT_EQ(violations.back().pointer, "/63");
}

TEST(JsonSchema, ValidatesATypicalMcpToolInputSchema) {
  const auto schema = compiled(R"({
    "type": "object",
    "properties": {
      "query": {"type": "string", "minLength": 1, "description": "What to search for"},
      "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
      "sort": {"type": "string", "enum": ["relevance", "date"]},
      "filters": {"type": "object", "properties": {"site": {"type": "string", "format": "hostname"},
                  "after": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "additionalProperties": false}
    },
    "required": ["query"],
    "additionalProperties": false,
    "$schema": "http://json-schema.org/draft-07/schema#"})");
  EXPECT_EQ(errors(schema, value::parse(R"({"query":"choir","limit":5,"filters":{"site":"x.org","after":null}})")), "");
  EXPECT_EQ(errors(schema, value::parse(R"({"limit":0,"sort":"size","filters":{"lang":"en"},"verbose":true})")),
            R"((root): missing required property "query"; /filters/lang: property not allowed; /limit: must be >= 1; )"
            R"(/sort: must be one of ["relevance","date"]; /verbose: property not allowed)");
}

TEST(JsonSchema, DescribeShowsTheFirstFiveViolations) {
  std::vector<schema_violation> violations;
  violations.reserve(7);
  for (int i = 0; i < 7; ++i) violations.push_back({"/" + std::to_string(i), "bad"});
  EXPECT_EQ(describe(violations), "/0: bad; /1: bad; /2: bad; /3: bad; /4: bad; (and 2 more)");
  EXPECT_EQ(describe({}), "");
}

TEST(JsonSchema, ExponentialSchemasStopAtTheStepBudget) {
  // Each level tries both alternatives of the next: 2^40 evaluations without a budget.
  value defs = value::object();
  for (int i = 0; i < 40; ++i) {
    const std::string next = "#/$defs/d" + std::to_string(i + 1);
    defs["d" + std::to_string(i)] = {{"anyOf", {{{"$ref", next}}, {{"$ref", next}, {"minimum", 0}}}}};
  }
  defs["d40"] = {{"type", "string"}};
  const auto schema = json_schema::compile(value{{"$defs", defs}, {"$ref", "#/$defs/d0"}});
  ASSERT_TRUE(schema.ok()) << schema.err().message;
  EXPECT_EQ(errors(*schema, value(1)), "(root): validation stopped: the schema takes too many steps on this value");
}

TEST(JsonSchema, LongRefChainsStopAtTheEvaluationDepth) {
  value defs = value::object();
  for (int i = 0; i < 2000; ++i) defs["d" + std::to_string(i)] = {{"$ref", "#/$defs/d" + std::to_string(i + 1)}};
  defs["d2000"] = true;
  const auto schema = json_schema::compile(value{{"$defs", defs}, {"$ref", "#/$defs/d0"}});
  ASSERT_TRUE(schema.ok()) << schema.err().message;
  EXPECT_EQ(errors(*schema, value(1)),
            "(root): validation stopped: the schema applies subschemas more than 1024 deep for this value");
}

TEST(JsonSchema, OneCompiledSchemaValidatesOnManyThreads) {
  const auto schema = compiled(tree_schema);
  const value good = value::parse(R"({"name":"a","children":[{"name":"b"}]})");
  const value bad = value::parse(R"({"name":"a","children":[{"name":2}]})");
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (!schema.validate(good).empty() || schema.validate(bad).size() != 1) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace choir
