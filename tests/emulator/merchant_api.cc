#include "tests/emulator/merchant_api.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"
#include "tests/emulator/clink_json.h"
#include "tests/emulator/decimal.h"
#include "tests/emulator/list_query.h"
#include "tests/emulator/merchant_objects.h"

namespace clink_gateway::emulator {
namespace {

constexpr char kTenantId[] = "tenant_emulator";
constexpr absl::Duration kCheckoutSessionLifetime = absl::Hours(1);
constexpr absl::Duration kAgentSessionLifetime = absl::Minutes(30);
constexpr absl::Duration kPortalLinkLifetime = absl::Minutes(30);
constexpr int64_t kOrderPageSizeDefault = 20;
constexpr int64_t kOrderPageSizeMax =
    50;  // Larger values are capped, as Clink documents.
constexpr int64_t kCatalogPageSizeDefault = 20;
constexpr int64_t kCatalogPageSizeMax = 100;  // Larger values are rejected.
constexpr size_t kRemarkMaxLength = 500;
constexpr size_t kCancelReasonMaxLength = 255;

// Enumerations from the OpenAPI schemas (clink-openapi/schemas.txt).
const std::set<std::string>& SessionPaymentMethods() {
  static const auto* const kValues = new std::set<std::string>{
      "CARD", "CASHAPP", "WECHAT",    "KAKAO",    "PIX",  "ALIPAY",
      "UPI",  "PAYPAL",  "GOOGLEPAY", "APPLEPAY", "QRIS", "GCASH"};
  return *kValues;
}
const std::set<std::string>& PaymentMethods() {
  static const auto* const kValues = new std::set<std::string>{
      "ALIPAY",    "CARD", "CASHAPP", "GCASH", "KAKAO",
      "PROMPTPAY", "QRIS", "TNG",     "WECHAT"};
  return *kValues;
}
const std::set<std::string>& InstrumentTypes() {
  static const auto* const kValues =
      new std::set<std::string>{"ALIPAY",    "CASHAPP", "GCASH", "KAKAO",
                                "PROMPTPAY", "QRIS",    "TNG",   "WECHAT"};
  return *kValues;
}
const std::set<std::string>& SubscriptionPaymentMethods() {
  static const auto* const kValues = new std::set<std::string>{"CARD", "GCASH"};
  return *kValues;
}
const std::set<std::string>& CancelReasonCodes() {
  static const auto* const kValues = new std::set<std::string>{
      "too_expensive",    "need_more_features",    "found_alternative",
      "no_longer_needed", "poor_customer_service", "poor_usability",
      "poor_quality",     "other_reasons"};
  return *kValues;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string IsoTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

absl::Status NotFound(absl::string_view what, absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(what, " ", id, " not found"));
}

absl::Status InvalidState(absl::string_view message) {
  return absl::FailedPreconditionError(message);
}

absl::Status ValidateCurrency(absl::string_view field,
                              absl::string_view currency) {
  const bool ok = currency.size() == 3 &&
                  std::all_of(currency.begin(), currency.end(), [](char c) {
                    return absl::ascii_isupper(static_cast<unsigned char>(c));
                  });
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be a three-letter upper-case ISO 4217 code"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEnum(absl::string_view field, const std::string& value,
                          const std::set<std::string>& allowed) {
  if (allowed.count(value) != 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be one of ", absl::StrJoin(allowed, ", ")));
}

// Validates the optional string member `field` against `allowed`.
absl::Status ValidateOptionalEnum(const JsonFields& fields,
                                  absl::string_view field,
                                  const std::set<std::string>& allowed) {
  GATEWAY_ASSIGN_OR_RETURN(std::string value, fields.OptionalString(field));
  if (value.empty()) return absl::OkStatus();
  return ValidateEnum(fields.FieldName(field), value, allowed);
}

// The optional platformType / deviceType pair of payment and subscription
// creation.
absl::Status ValidateClientDevice(const JsonFields& fields) {
  GATEWAY_RETURN_IF_ERROR(
      ValidateOptionalEnum(fields, "platformType", {"WEB", "WAP"}));
  return ValidateOptionalEnum(fields, "deviceType", {"Android", "iOS"});
}

// Inserts `entity` into `map` under its id and returns the stored copy.
template <typename T>
T& Store(std::map<std::string, T>& map, T entity) {
  const std::string id = entity.id;
  T& stored = map[id];
  stored = std::move(entity);
  return stored;
}

// Adds one billing interval of `price` to `start`, in UTC calendar terms.
absl::Time AddInterval(absl::Time start, const Price& price) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond civil = absl::ToCivilSecond(start, utc);
  const absl::Duration subsecond = start - absl::FromCivil(civil, utc);
  const int64_t n = std::max<int64_t>(price.interval_count, 1);
  int64_t months = 0;
  int64_t days = 0;
  if (price.interval == "day" || price.interval == "custom") {
    days = n;
  } else if (price.interval == "week") {
    days = 7 * n;
  } else if (price.interval == "quarter") {
    months = 3 * n;
  } else if (price.interval == "half_year") {
    months = 6 * n;
  } else if (price.interval == "year") {
    months = 12 * n;
  } else {
    months = n;  // "month"
  }
  const absl::CivilSecond end(civil.year(), civil.month() + months,
                              civil.day() + days, civil.hour(), civil.minute(),
                              civil.second());
  return absl::FromCivil(end, utc) + subsecond;
}

// ---------------------------------------------------------------------------------------------
// Request readers.

struct CustomerRef {
  std::string id;
  std::string email;
  std::string reference_id;
};

absl::StatusOr<CustomerRef> ReadCustomerRef(const JsonFields& fields) {
  CustomerRef ref;
  GATEWAY_ASSIGN_OR_RETURN(ref.id, fields.OptionalString("customerId"));
  GATEWAY_ASSIGN_OR_RETURN(ref.email, fields.OptionalString("customerEmail"));
  GATEWAY_ASSIGN_OR_RETURN(ref.reference_id,
                           fields.OptionalString("referenceCustomerId"));
  if (ref.id.empty() && ref.email.empty() && ref.reference_id.empty()) {
    return absl::InvalidArgumentError("CUSTOMER_NOT_FOUND");
  }
  return ref;
}

absl::StatusOr<std::vector<PriceData>> ReadPriceDataList(
    const JsonFields& fields, absl::string_view name) {
  std::vector<PriceData> list;
  const rapidjson::Value* array = fields.Find(name);
  if (array == nullptr) return list;
  if (!array->IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fields.FieldName(name), " must be an array"));
  }
  for (rapidjson::SizeType i = 0; i < array->Size(); ++i) {
    const std::string prefix =
        absl::StrCat(fields.FieldName(name), "[", i, "].");
    if (!(*array)[i].IsObject()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, " must be an object"));
    }
    const JsonFields item((*array)[i], prefix);
    PriceData data;
    GATEWAY_ASSIGN_OR_RETURN(data.name, item.RequiredString("name"));
    GATEWAY_ASSIGN_OR_RETURN(data.unit_amount,
                             item.RequiredAmount("unitAmount"));
    GATEWAY_ASSIGN_OR_RETURN(data.quantity, item.OptionalInt("quantity"));
    if (data.quantity.has_value() && *data.quantity < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "quantity must be at least 1"));
    }
    GATEWAY_ASSIGN_OR_RETURN(data.currency, item.OptionalString("currency"));
    if (!data.currency.empty()) {
      GATEWAY_RETURN_IF_ERROR(
          ValidateCurrency(item.FieldName("currency"), data.currency));
    }
    GATEWAY_ASSIGN_OR_RETURN(data.image_url, item.OptionalString("imageUrl"));
    list.push_back(std::move(data));
  }
  return list;
}

// Validates scheduledPhases and returns them re-serialized (for echoing on
// GET).
absl::StatusOr<std::string> ReadScheduledPhases(
    const JsonFields& fields, const std::vector<Price>& prices) {
  const rapidjson::Value* array = fields.Find("scheduledPhases");
  if (array == nullptr) return std::string();
  if (!array->IsArray())
    return absl::InvalidArgumentError("scheduledPhases must be an array");
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartArray();
  int64_t last_sequence = std::numeric_limits<int64_t>::min();
  int64_t last_cycle = std::numeric_limits<int64_t>::min();
  for (rapidjson::SizeType i = 0; i < array->Size(); ++i) {
    const std::string prefix = absl::StrCat("scheduledPhases[", i, "].");
    if (!(*array)[i].IsObject()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, " must be an object"));
    }
    const JsonFields phase((*array)[i], prefix);
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> sequence,
                             phase.OptionalInt("sequence"));
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> cycle,
                             phase.OptionalInt("effectiveCycle"));
    GATEWAY_ASSIGN_OR_RETURN(std::string snapshot,
                             phase.RequiredString("priceSnapshotId"));
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> quantity,
                             phase.OptionalInt("quantity"));
    GATEWAY_ASSIGN_OR_RETURN(auto metadata,
                             phase.OptionalStringMap("metadata"));
    if (!sequence.has_value())
      return absl::InvalidArgumentError(prefix + "sequence is required");
    if (!cycle.has_value()) {
      return absl::InvalidArgumentError(prefix + "effectiveCycle is required");
    }
    if (!quantity.has_value() || *quantity < 1) {
      return absl::InvalidArgumentError(
          prefix + "quantity is required and must be at least 1");
    }
    if (*sequence <= last_sequence || *cycle <= last_cycle) {
      return absl::InvalidArgumentError(
          "scheduledPhases sequence and effectiveCycle must be strictly "
          "increasing");
    }
    last_sequence = *sequence;
    last_cycle = *cycle;
    const auto price =
        std::find_if(prices.begin(), prices.end(),
                     [&](const Price& p) { return p.snapshot_id == snapshot; });
    if (price == prices.end()) return NotFound("price snapshot", snapshot);
    if (price->price_type != "recurring") {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "priceSnapshotId must be a recurring price snapshot"));
    }
    if (metadata.size() > 10) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "metadata has more than 10 keys"));
    }
    writer.StartObject();
    WriteInt(writer, "sequence", *sequence);
    WriteInt(writer, "effectiveCycle", *cycle);
    WriteString(writer, "priceSnapshotId", snapshot);
    WriteInt(writer, "quantity", *quantity);
    if (!metadata.empty()) WriteStringMap(writer, "metadata", metadata);
    writer.EndObject();
  }
  writer.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The largest product image Clink takes ("at most 5 MB"; read as 5 MiB).
constexpr size_t kMaxImageBytes = 5 << 20;

// One part of a multipart/form-data body.
struct FormPart {
  std::string name;
  std::string filename;
  std::string content_type;
  std::string data;
};

// The value of `param` ("name", "filename") in a Content-Disposition line
// (quoted, as browsers and the gateway send it), or "".
std::string DispositionParam(absl::string_view line, absl::string_view param) {
  const std::string key = absl::StrCat(param, "=\"");
  for (size_t at = line.find(key); at != absl::string_view::npos;
       at = line.find(key, at + 1)) {
    if (at > 0 && line[at - 1] != ' ' && line[at - 1] != ';') continue;
    const size_t start = at + key.size();
    const size_t end = line.find('"', start);
    if (end == absl::string_view::npos) return "";
    return std::string(line.substr(start, end - start));
  }
  return "";
}

// Parses a multipart/form-data body (RFC 7578) strictly enough to catch a
// client that frames it wrongly.
absl::StatusOr<std::vector<FormPart>> ParseMultipart(
    absl::string_view content_type, absl::string_view body) {
  constexpr absl::string_view kType = "multipart/form-data";
  if (!absl::StartsWithIgnoreCase(content_type, kType)) {
    return absl::InvalidArgumentError(
        "Content-Type must be multipart/form-data");
  }
  const size_t b = content_type.find("boundary=");
  if (b == absl::string_view::npos) {
    return absl::InvalidArgumentError("multipart body without a boundary");
  }
  std::string boundary(content_type.substr(b + 9));
  if (boundary.size() >= 2 && boundary.front() == '"') {
    boundary = boundary.substr(1, boundary.size() - 2);
  }
  const std::string first = absl::StrCat("--", boundary, "\r\n");
  const std::string delimiter = absl::StrCat("\r\n--", boundary);
  if (boundary.empty() || !absl::StartsWith(body, first)) {
    return absl::InvalidArgumentError(
        "multipart body does not start with its "
        "boundary");
  }
  std::vector<FormPart> parts;
  size_t pos = first.size();
  for (;;) {
    const size_t headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == absl::string_view::npos) {
      return absl::InvalidArgumentError("multipart part without headers");
    }
    FormPart part;
    for (absl::string_view line :
         absl::StrSplit(body.substr(pos, headers_end - pos), "\r\n")) {
      if (absl::StartsWithIgnoreCase(line, "Content-Disposition:")) {
        part.name = DispositionParam(line, "name");
        part.filename = DispositionParam(line, "filename");
      } else if (absl::StartsWithIgnoreCase(line, "Content-Type:")) {
        part.content_type =
            std::string(absl::StripAsciiWhitespace(line.substr(13)));
      }
    }
    const size_t data_start = headers_end + 4;
    const size_t data_end = body.find(delimiter, data_start);
    if (data_end == absl::string_view::npos) {
      return absl::InvalidArgumentError("multipart part is not closed");
    }
    part.data = std::string(body.substr(data_start, data_end - data_start));
    parts.push_back(std::move(part));
    pos = data_end + delimiter.size();
    if (body.substr(pos) == "--\r\n" || body.substr(pos) == "--") break;
    if (!absl::StartsWith(body.substr(pos), "\r\n")) {
      return absl::InvalidArgumentError("malformed multipart delimiter");
    }
    pos += 2;
  }
  return parts;
}

// Reads a price's fields (POST /price, PUT /price/{id}, and each entry of
// POST /product's priceList) into `price`. `create`: currency, unitAmount and
// priceType are required. Nested recurring members are accepted in camelCase
// and snake_case (clink-api.md §10.5).
absl::Status ReadPriceFields(const JsonFields& fields, bool create,
                             Price* price, std::optional<bool>* is_default) {
  std::string currency;
  std::string amount;
  std::string type;
  if (create) {
    GATEWAY_ASSIGN_OR_RETURN(currency, fields.RequiredString("currency"));
    GATEWAY_ASSIGN_OR_RETURN(amount, fields.RequiredAmount("unitAmount"));
    GATEWAY_ASSIGN_OR_RETURN(type, fields.RequiredString("priceType"));
  } else {
    GATEWAY_ASSIGN_OR_RETURN(currency, fields.OptionalString("currency"));
    GATEWAY_ASSIGN_OR_RETURN(amount, fields.OptionalAmount("unitAmount"));
    GATEWAY_ASSIGN_OR_RETURN(type, fields.OptionalString("priceType"));
  }
  if (!currency.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        ValidateCurrency(fields.FieldName("currency"), currency));
    price->currency = currency;
  }
  if (!amount.empty()) price->unit_amount = amount;
  if (!type.empty()) {
    if (type != "one_time" && type != "recurring") {
      return absl::InvalidArgumentError(absl::StrCat(
          fields.FieldName("priceType"), " must be one_time or recurring"));
    }
    price->price_type = type;
  }
  if (const rapidjson::Value* recurring = fields.Find("recurringDetails");
      recurring != nullptr) {
    if (!recurring->IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(
          fields.FieldName("recurringDetails"), " must be an object"));
    }
    const JsonFields details(*recurring,
                             fields.FieldName("recurringDetails") + ".");
    const auto either = [&](absl::string_view camel, absl::string_view snake) {
      return details.Find(camel) != nullptr ? camel : snake;
    };
    GATEWAY_ASSIGN_OR_RETURN(std::string interval,
                             details.OptionalString("interval"));
    if (!interval.empty()) price->interval = interval;
    GATEWAY_ASSIGN_OR_RETURN(
        std::optional<int64_t> trial,
        details.OptionalInt(either("trialPeriodDays", "trial_period_days")));
    if (trial.has_value()) price->trial_period_days = *trial;
    GATEWAY_ASSIGN_OR_RETURN(
        std::string model,
        details.OptionalString(either("pricingModel", "pricing_model")));
    if (!model.empty()) price->pricing_model = model;
    GATEWAY_ASSIGN_OR_RETURN(
        std::optional<int64_t> count,
        details.OptionalInt(either("intervalCount", "interval_count")));
    if (count.has_value()) price->interval_count = *count;
  }
  if (price->price_type == "recurring" && price->interval.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fields.FieldName("recurringDetails"),
                     ".interval is required for a recurring price"));
  }
  GATEWAY_ASSIGN_OR_RETURN(std::string active,
                           fields.OptionalString("isActive"));
  if (!active.empty()) {
    if (active != "true" && active != "false") {
      return absl::InvalidArgumentError(absl::StrCat(
          fields.FieldName("isActive"), " must be \"true\" or \"false\""));
    }
    price->active = active == "true";
  }
  GATEWAY_ASSIGN_OR_RETURN(*is_default, fields.OptionalBool("isDefaultPrice"));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Coupons, promotion codes and test clocks (clink-api.md §9.6, §10.9).

constexpr int64_t kCouponPageSizeDefault = 20;
constexpr int64_t kCouponPageSizeMax = 50;  // Larger values are capped.
constexpr size_t kNameMaxLength = 255;

// Currency code -> amount (exact text), in the order received.
using AmountMap = std::vector<std::pair<std::string, std::string>>;

struct PromotionCode {
  std::string id;
  std::string coupon_id;
  std::string code;
  std::string status;  // active, inactive, archived
  bool first_order_only = false;
  std::vector<std::string> restricted_customer_ids;
  AmountMap minimum_spend;
  int64_t per_customer_redemption_limit = 0;  // 0: no limit.
  int64_t max_redemption_limit = 0;           // 0: no limit.
  int64_t valid_period_end_ms = 0;            // 0: none.
  int64_t create_time_ms = 0;
};

struct Coupon {
  std::string id;
  std::string name;
  std::string discount_type;  // percentage, fixed_amount
  std::string percentage;     // Exact text; percentage coupons only.
  AmountMap fixed_amounts;    // fixed_amount coupons only.
  std::string apply_type;     // none, product, price
  std::vector<std::string> applicable_products;
  std::string duration_type;  // once, repeating, forever
  int64_t duration_months = 0;
  int64_t max_redemption_count = 0;  // 0: no limit.
  int64_t valid_period_start_ms = 0;
  int64_t valid_period_end_ms = 0;  // 0: none.
  int64_t create_time_ms = 0;
  std::vector<std::string> promotion_code_ids;  // Creation order.
};

struct TestClock {
  std::string id;
  std::string name;
  std::string subscription_id;
  std::string metadata;  // JSON text, as given.
  std::string status;    // READY, ADVANCING, FAILED, COMPLETED
  int64_t frozen_time_ms = 0;
  int64_t last_advanced_to_ms = 0;  // 0: never advanced.
  int64_t event_count = 0;
  int64_t create_time_ms = 0;
  int64_t update_time_ms = 0;
};

// An optional array of strings.
absl::StatusOr<std::vector<std::string>> ReadStringArray(
    const JsonFields& fields, absl::string_view name) {
  std::vector<std::string> out;
  const rapidjson::Value* array = fields.Find(name);
  if (array == nullptr) return out;
  if (!array->IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fields.FieldName(name), " must be an array of strings"));
  }
  for (const rapidjson::Value& item : array->GetArray()) {
    if (!item.IsString() || item.GetStringLength() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          fields.FieldName(name), " must be an array of non-empty strings"));
    }
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

// An optional object of ISO 4217 code -> amount > 0 (fixedAmounts,
// minimumSpend).
absl::StatusOr<AmountMap> ReadAmountMap(const JsonFields& fields,
                                        absl::string_view name) {
  AmountMap out;
  const rapidjson::Value* object = fields.Find(name);
  if (object == nullptr) return out;
  if (!object->IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fields.FieldName(name), " must be an object"));
  }
  const JsonFields amounts(*object, absl::StrCat(fields.FieldName(name), "."));
  for (auto it = object->MemberBegin(); it != object->MemberEnd(); ++it) {
    const std::string currency(it->name.GetString(),
                               it->name.GetStringLength());
    GATEWAY_RETURN_IF_ERROR(
        ValidateCurrency(amounts.FieldName(currency), currency));
    GATEWAY_ASSIGN_OR_RETURN(std::string amount,
                             amounts.RequiredAmount(currency));
    out.emplace_back(currency, std::move(amount));
  }
  return out;
}

void WriteAmountMap(JsonWriter& writer, absl::string_view key,
                    const AmountMap& amounts) {
  WriteKey(writer, key);
  writer.StartObject();
  for (const auto& [currency, amount] : amounts) {
    WriteAmount(writer, currency, amount);
  }
  writer.EndObject();
}

// Reads a PromotionCodeCreateRequest (without the code's uniqueness check).
absl::StatusOr<PromotionCode> ReadPromotionCodeSpec(const JsonFields& fields) {
  PromotionCode code;
  GATEWAY_ASSIGN_OR_RETURN(code.code, fields.OptionalString("code"));
  if (code.code.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        fields.FieldName("code"), " must be at most 64 characters"));
  }
  GATEWAY_ASSIGN_OR_RETURN(std::optional<bool> first_order_only,
                           fields.OptionalBool("firstOrderOnly"));
  code.first_order_only = first_order_only.value_or(false);
  GATEWAY_ASSIGN_OR_RETURN(code.restricted_customer_ids,
                           ReadStringArray(fields, "restrictedCustomerIds"));
  GATEWAY_ASSIGN_OR_RETURN(code.minimum_spend,
                           ReadAmountMap(fields, "minimumSpend"));
  for (const char* name :
       {"perCustomerRedemptionLimit", "maxRedemptionLimit"}) {
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> limit,
                             fields.OptionalInt(name));
    if (limit.has_value() && *limit < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(fields.FieldName(name), " must be at least 1"));
    }
    (absl::string_view(name) == "maxRedemptionLimit"
         ? code.max_redemption_limit
         : code.per_customer_redemption_limit) = limit.value_or(0);
  }
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> end,
                           fields.OptionalInt("validPeriodEnd"));
  code.valid_period_end_ms = end.value_or(0);
  return code;
}

// ApiPromotionCodeInfoResponse members.
void WritePromotionCodeInfo(JsonWriter& writer, const PromotionCode& code) {
  WriteString(writer, "couponId", code.coupon_id);
  WriteString(writer, "promotionCodeId", code.id);
  WriteString(writer, "code", code.code);
  WriteString(writer, "status", code.status);
  WriteBool(writer, "firstOrderOnly", code.first_order_only);
  WriteInt(writer, "redemptionCount", 0);
  if (code.max_redemption_limit != 0) {
    WriteInt(writer, "maxRedemptionLimit", code.max_redemption_limit);
  }
  if (code.valid_period_end_ms != 0) {
    WriteInt(writer, "validPeriodEnd", code.valid_period_end_ms);
  }
  WriteInt(writer, "createTime", code.create_time_ms);
  WriteBool(writer, "mirroring", false);
}

// "25% off for 3 months", "USD 5 off once".
std::string CouponTerms(const Coupon& coupon) {
  std::string terms =
      coupon.discount_type == "percentage"
          ? absl::StrCat(coupon.percentage, "% off")
          : absl::StrCat(coupon.fixed_amounts.empty()
                             ? std::string()
                             : absl::StrCat(coupon.fixed_amounts[0].first, " ",
                                            coupon.fixed_amounts[0].second),
                         " off");
  if (coupon.duration_type == "repeating") {
    absl::StrAppend(&terms, " for ", coupon.duration_months, " months");
  } else {
    absl::StrAppend(&terms, " ", coupon.duration_type);
  }
  return terms;
}

// ApiCouponInfoResponse members.
void WriteCouponInfo(JsonWriter& writer, const Coupon& coupon) {
  WriteString(writer, "couponId", coupon.id);
  WriteString(writer, "couponName", coupon.name);
  WriteString(writer, "discountType", coupon.discount_type);
  if (!coupon.percentage.empty()) {
    WriteAmount(writer, "percentage", coupon.percentage);
  }
  if (!coupon.fixed_amounts.empty()) {
    WriteAmountMap(writer, "fixedAmounts", coupon.fixed_amounts);
  }
  WriteString(writer, "durationType", coupon.duration_type);
  if (coupon.duration_months != 0) {
    WriteInt(writer, "durationMonths", coupon.duration_months);
  }
  if (coupon.max_redemption_count != 0) {
    WriteInt(writer, "maxRedemptionCount", coupon.max_redemption_count);
  }
  WriteInt(writer, "redeemedCount", 0);
  if (coupon.valid_period_end_ms != 0) {
    WriteInt(writer, "validPeriodEnd", coupon.valid_period_end_ms);
  }
  WriteBool(writer, "mirroring", false);
  WriteString(writer, "terms", CouponTerms(coupon));
}

// TestClockApiVo members.
void WriteTestClock(JsonWriter& writer, const TestClock& clock) {
  WriteString(writer, "name", clock.name);
  WriteString(writer, "clockId", clock.id);
  WriteString(writer, "subscriptionId", clock.subscription_id);
  WriteInt(writer, "frozenTime", clock.frozen_time_ms);
  if (clock.last_advanced_to_ms != 0) {
    WriteInt(writer, "lastAdvancedTo", clock.last_advanced_to_ms);
  }
  WriteString(writer, "status", clock.status);
  WriteBool(writer, "livemode", false);
  WriteStringIfSet(writer, "metadata", clock.metadata);
  WriteInt(writer, "eventCount", clock.event_count);
  WriteInt(writer, "createTime", clock.create_time_ms);
  WriteInt(writer, "updateTime", clock.update_time_ms);
}

// {"code":200,"msg":"success","data":[...]}; `write_items` writes the
// elements.
std::string DataArrayEnvelope(
    absl::FunctionRef<void(JsonWriter&)> write_items) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  WriteInt(writer, "code", kCodeSuccess);
  WriteString(writer, "msg", "success");
  WriteKey(writer, "data");
  writer.StartArray();
  write_items(writer);
  writer.EndArray();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Clink's `RVoid`: a success without `data`.
constexpr char kVoidSuccess[] = R"({"code":200,"msg":"success"})";

}  // namespace

// ---------------------------------------------------------------------------------------------
// State.

struct MerchantApi::State {
  absl::BitGen bitgen;
  std::map<std::string, Customer> customers;
  std::map<std::string, Instrument> instruments;
  std::vector<Product> products;  // Catalog order.
  std::vector<Price> prices;      // Catalog order.
  std::map<std::string, CheckoutSession> sessions;
  std::map<std::string, Order> orders;
  std::vector<std::string> order_ids;  // Creation order.
  std::map<std::string, Refund> refunds;
  std::map<std::string, std::string>
      refund_by_merchant_id;  // refundMerchantOrderId -> id
  std::map<std::string, Subscription> subscriptions;
  std::map<std::string, Invoice> invoices;
  std::map<std::string, AgentSession> agent_sessions;
  struct Image {
    std::string url;
    std::string file_name;
  };
  std::map<std::string, Image> images;  // By ossId.
  std::map<std::string, Coupon> coupons;
  std::vector<std::string> coupon_ids;  // Creation order.
  std::map<std::string, PromotionCode> promotion_codes;
  std::map<std::string, TestClock> test_clocks;
  std::vector<std::string> test_clock_ids;  // Creation order.
  // Events (type, resource JSON) emitted by requests, not yet handed to
  // Options::on_event.
  std::vector<std::pair<std::string, std::string>> pending_events;

  void SeedFixtures();

  // `prefix` followed by 24 random [0-9a-z] characters.
  std::string NewId(absl::string_view prefix) {
    static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string id(prefix);
    for (int i = 0; i < 24; ++i)
      id.push_back(kAlphabet[absl::Uniform(bitgen, 0, 36)]);
    return id;
  }

  const Product* FindProduct(absl::string_view id) const {
    for (const Product& product : products) {
      if (product.id == id) return &product;
    }
    return nullptr;
  }

  const Price* FindPrice(absl::string_view id) const {
    for (const Price& price : prices) {
      if (price.id == id) return &price;
    }
    return nullptr;
  }

  // The active catalog price `price_id` of product `product_id`, of
  // `price_type` ("one_time" or "recurring"; empty accepts either).
  absl::StatusOr<const Price*> ResolvePrice(
      absl::string_view price_id, absl::string_view product_id,
      absl::string_view price_type) const {
    const Price* price = FindPrice(price_id);
    if (price == nullptr) return NotFound("price", price_id);
    if (FindProduct(product_id) == nullptr) {
      return NotFound("product", product_id);
    }
    if (price->product_id != product_id) {
      return absl::InvalidArgumentError("priceId does not belong to productId");
    }
    if (!price_type.empty() && price->price_type != price_type) {
      return absl::InvalidArgumentError(absl::StrCat(
          "priceId must be a ",
          price_type == "one_time" ? "one-time" : std::string(price_type),
          " price"));
    }
    if (!price->active) {
      return absl::InvalidArgumentError("priceId is not active");
    }
    return price;
  }

  template <typename T>
  static T* Find(std::map<std::string, T>& map, const std::string& id) {
    auto it = map.find(id);
    return it == map.end() ? nullptr : &it->second;
  }

  Customer* FindCustomerBy(std::string Customer::*field,
                           const std::string& value) {
    for (auto& [id, customer] : customers) {
      if (customer.*field == value) return &customer;
    }
    return nullptr;
  }

  // Clink's customer resolution (clink-api.md §4): customerId wins and the
  // other identifiers must agree with it; otherwise email and reference id must
  // agree with each other; a new customer is created when nothing matches.
  absl::StatusOr<Customer*> ResolveCustomer(const CustomerRef& ref) {
    const auto mismatch = [](const std::string& given,
                             const std::string& stored) {
      return !given.empty() && !stored.empty() && given != stored;
    };
    Customer* customer = nullptr;
    if (!ref.id.empty()) {
      customer = Find(customers, ref.id);
      if (customer == nullptr)
        return absl::InvalidArgumentError("CUSTOMER_NOT_FOUND");
      if (mismatch(ref.email, customer->email) ||
          mismatch(ref.reference_id, customer->reference_id)) {
        return absl::InvalidArgumentError("CUSTOMER_IDENTIFIER_NOT_MATCHED");
      }
    } else {
      Customer* by_email = ref.email.empty()
                               ? nullptr
                               : FindCustomerBy(&Customer::email, ref.email);
      Customer* by_reference =
          ref.reference_id.empty()
              ? nullptr
              : FindCustomerBy(&Customer::reference_id, ref.reference_id);
      if (by_email != nullptr && by_reference != nullptr &&
          by_email != by_reference) {
        return absl::InvalidArgumentError("CUSTOMER_IDENTIFIER_NOT_MATCHED");
      }
      customer = by_email != nullptr ? by_email : by_reference;
      if (customer != nullptr &&
          (mismatch(ref.email, customer->email) ||
           mismatch(ref.reference_id, customer->reference_id))) {
        return absl::InvalidArgumentError("CUSTOMER_IDENTIFIER_NOT_MATCHED");
      }
      if (customer == nullptr) {
        const std::string id = NewId("cus_");
        customer = &customers[id];
        customer->id = id;
      }
    }
    // Bind identifiers the customer did not have yet.
    if (customer->email.empty()) customer->email = ref.email;
    if (customer->reference_id.empty())
      customer->reference_id = ref.reference_id;
    return customer;
  }

  // Looks up an instrument usable by `customer` for `method`.
  absl::StatusOr<const Instrument*> FindInstrumentFor(
      const std::string& instrument_id, const Customer& customer,
      const std::string& method) {
    const Instrument* instrument = Find(instruments, instrument_id);
    if (instrument == nullptr)
      return NotFound("payment instrument", instrument_id);
    if (instrument->customer_id != customer.id) {
      return absl::InvalidArgumentError(
          "paymentInstrumentId does not belong to the resolved customer");
    }
    if (instrument->type != method) {
      return absl::InvalidArgumentError(absl::StrCat(
          "paymentMethodType ", method,
          " does not match the payment instrument's type ", instrument->type));
    }
    return instrument;
  }

  // Creates the order for a charge on `instrument` and settles it the way the
  // instrument dictates: cards per their fixture outcome, wallets always need
  // an action (status 5). Returns the create-payment status: 1 success, 3
  // failure, 5 next action.
  int Charge(const Instrument& instrument, absl::Time now, Order* order) {
    order->payment_method_type = instrument.type;
    order->payment_instrument_id = instrument.id;
    order->channel_transaction_id = NewId("emu_txn_");
    order->create_time_ms = Millis(now);
    const ChargeOutcome outcome = instrument.type == "CARD"
                                      ? instrument.outcome
                                      : ChargeOutcome::kRequireAction;
    switch (outcome) {
      case ChargeOutcome::kSucceed:
        order->status = "success";
        order->payment_time_ms = Millis(now);
        return 1;
      case ChargeOutcome::kDecline:
        order->status = "failed";
        order->payment_time_ms = Millis(now);
        order->failure_code = "card_declined";
        order->failure_message = "The card was declined (emulator fixture).";
        return 3;
      case ChargeOutcome::kRequireAction:
        order->status = "requires_action";
        order->action_expires = now + kWalletQrLifetime;
        return 5;
    }
    return 3;
  }

  // A checkout session as GET /checkout/session/{id} writes it at `now`.
  void WriteSession(JsonWriter& writer, const CheckoutSession& session,
                    absl::Time now) {
    std::string status = now >= session.expires ? "expired" : "open";
    std::string payment_status = "unpaid";
    if (const Order* order = Find(orders, session.order_id)) {
      if (order->status == "success" || order->status == "partial_refunded" ||
          order->status == "refunded") {
        status = "completed";
        payment_status = "paid";
      } else if (order->status == "requires_action" ||
                 order->status == "pending") {
        payment_status = "processing";
      }
    }
    const Customer* customer = Find(customers, session.customer_id);
    const Price* price = FindPrice(session.price_id);
    const Product* product = FindProduct(session.product_id);
    WriteString(writer, "sessionId", session.id);
    WriteString(writer, "token", session.token);
    WriteString(writer, "status", status);
    WriteString(writer, "paymentStatus", payment_status);
    WriteAmount(writer, "amountSubtotal", session.amount);
    WriteAmount(writer, "amountTotal", session.amount);
    WriteString(writer, "originalCurrency", session.currency);
    WriteString(writer, "paymentCurrency", session.currency);
    WriteStringIfSet(writer, "subscriptionId", session.subscription_id);
    WriteStringIfSet(writer, "invoiceId", session.invoice_id);
    WriteStringIfSet(writer, "orderId", session.order_id);
    WriteStringIfSet(writer, "merchantReferenceId",
                     session.merchant_reference_id);
    WriteString(writer, "locale", "en-US");
    WriteString(writer, "uiMode", session.ui_mode);
    WriteStringIfSet(writer, "returnUrl", session.return_url);
    WriteStringIfSet(writer, "cancelUrl", session.cancel_url);
    WriteStringIfSet(writer, "successUrl", session.success_url);
    WriteString(writer, "created", IsoTime(session.created));
    WriteString(writer, "expire", IsoTime(session.expires));
    if (price != nullptr) {
      WriteKey(writer, "price");
      writer.StartObject();
      WriteString(writer, "priceId", price->id);
      WriteKey(writer, "priceList");
      writer.StartArray();
      writer.StartObject();
      WriteAmount(writer, "amount", price->unit_amount);
      WriteString(writer, "currency", price->currency);
      writer.EndObject();
      writer.EndArray();
      if (price->price_type == "recurring") {
        WriteKey(writer, "recurring");
        writer.StartObject();
        WriteInt(writer, "freeTrialDays", price->trial_period_days);
        WriteString(writer, "interval", price->interval);
        writer.EndObject();
      }
      writer.EndObject();
    }
    if (product != nullptr) {
      WriteKey(writer, "product");
      writer.StartObject();
      WriteString(writer, "productId", product->id);
      WriteString(writer, "productName", product->name);
      writer.EndObject();
    }
    WriteKey(writer, "customer");
    writer.StartObject();
    WriteString(writer, "customerId", session.customer_id);
    if (customer != nullptr) WriteStringIfSet(writer, "email", customer->email);
    writer.EndObject();
    if (!session.price_data.empty()) {
      WritePriceDataList(writer, "priceDataList", session.price_data);
    }
  }

  // A completed-by-API checkout session that backs a payment or subscription
  // order.
  CheckoutSession& AddImplicitSession(const Order& order, absl::Time now) {
    const std::string id = NewId("sess_");
    CheckoutSession& session = sessions[id];
    session.id = id;
    session.token = NewId("tok_");
    session.customer_id = order.customer_id;
    session.amount = order.amount;
    session.currency = order.currency;
    session.merchant_reference_id = order.merchant_reference_id;
    session.price_id = order.price_id;
    session.product_id = order.product_id;
    session.ui_mode = "hostedPage";
    session.price_data = order.price_data;
    session.created = now;
    session.expires = now + kCheckoutSessionLifetime;
    session.order_id = order.id;
    return session;
  }
};

// The fixed fixtures every emulator starts with; their ids are in
// merchant_api.h.
void MerchantApi::State::SeedFixtures() {
  customers[kSeedCustomerId] =
      Customer{kSeedCustomerId, kSeedCustomerEmail, kSeedCustomerReferenceId,
               "Emulator Test Customer"};
  const auto add_card = [&](const char* id, ChargeOutcome outcome) {
    Instrument& card = instruments[id];
    card.id = id;
    card.customer_id = kSeedCustomerId;
    card.type = "CARD";
    card.outcome = outcome;
    card.created_ms = kCatalogCreateTimeMs;
  };
  add_card(kSeedCardInstrumentId, ChargeOutcome::kSucceed);
  add_card(kSeedDeclinedCardId, ChargeOutcome::kDecline);
  add_card(kSeedThreeDsCardId, ChargeOutcome::kRequireAction);
  Instrument& gcash = instruments[kSeedGcashInstrumentId];
  gcash.id = kSeedGcashInstrumentId;
  gcash.customer_id = kSeedCustomerId;
  gcash.type = "GCASH";
  gcash.account_tag = "gcash-emu-test";
  gcash.created_ms = kCatalogCreateTimeMs;

  const auto add_product =
      [&](const char* id, const char* name, const char* description,
          const char* default_price, const char* tax_category) {
        Product product;
        product.id = id;
        product.name = name;
        product.description = description;
        product.default_price = default_price;
        product.image = absl::StrCat(
            "https://checkout.clink-emulator.invalid/img/", id, ".png");
        product.tax_category = tax_category;
        product.localized_names = {{"en-US", name}};
        products.push_back(std::move(product));
      };
  add_product(kSeedProductBasic, "Emulator Basic",
              "Basic plan (emulator fixture)", kSeedPriceMonthly,
              "software_service");
  add_product(kSeedProductPro, "Emulator Pro", "Pro plan (emulator fixture)",
              kSeedPriceProMonthly, "software_service");
  add_product(kSeedProductEbook, "Emulator E-book",
              "One-time purchase (emulator fixture)", kSeedPriceOneTime,
              "ebook");

  const auto add_price = [&](const char* id, const char* product_id,
                             const char* currency, const char* amount,
                             const char* interval, bool active) {
    Price price;
    price.id = id;
    price.snapshot_id = absl::StrReplaceAll(id, {{"price_", "pss_"}});
    price.product_id = product_id;
    price.currency = currency;
    price.unit_amount = amount;
    price.price_type = interval[0] == '\0' ? "one_time" : "recurring";
    price.interval = interval;
    price.active = active;
    prices.push_back(std::move(price));
  };
  add_price(kSeedPriceMonthly, kSeedProductBasic, "USD", "9.99", "month", true);
  add_price(kSeedPriceYearly, kSeedProductBasic, "USD", "99.00", "year", true);
  add_price(kSeedPriceLegacy, kSeedProductBasic, "USD", "7.99", "month", false);
  add_price(kSeedPriceProMonthly, kSeedProductPro, "USD", "29.99", "month",
            true);
  add_price(kSeedPriceProEur, kSeedProductPro, "EUR", "27.99", "month", true);
  add_price(kSeedPriceOneTime, kSeedProductEbook, "USD", "19.990", "", true);
}

// ---------------------------------------------------------------------------------------------
// MerchantApi.

MerchantApi::MerchantApi(Options options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {
  {
    absl::MutexLock lock(&mu_);
    state_->SeedFixtures();
  }
  router_.Add("POST", "/checkout/session", &MerchantApi::CreateCheckoutSession);
  router_.Add("GET", "/checkout/session/{id}",
              &MerchantApi::GetCheckoutSession);
  router_.Add("POST", "/payment", &MerchantApi::CreatePayment);
  router_.Add("POST", "/payment/{orderId}/qrcode/refresh",
              &MerchantApi::RefreshQrCode);
  router_.Add("POST", "/payment-instrument",
              &MerchantApi::CreatePaymentInstrument);
  router_.Add("GET", "/order", &MerchantApi::ListOrders);
  router_.Add("GET", "/order/{id}", &MerchantApi::GetOrder);
  router_.Add("POST", "/order/payment-session",
              &MerchantApi::CreateAgentPaymentSession);
  router_.Add("GET", "/order/payment-session/{sessionId}",
              &MerchantApi::GetAgentPaymentSession);
  router_.Add("POST", "/refund", &MerchantApi::CreateRefund);
  router_.Add("GET", "/refund/{id}", &MerchantApi::GetRefund);
  router_.Add("POST", "/billing/session", &MerchantApi::CreateBillingSession);
  router_.Add("POST", "/subscription", &MerchantApi::CreateSubscription);
  router_.Add("GET", "/subscription/{id}", &MerchantApi::GetSubscription);
  router_.Add("POST", "/subscription/{id}/cancel",
              &MerchantApi::CancelSubscription);
  router_.Add("GET", "/subscription/invoice/{id}", &MerchantApi::GetInvoice);
  router_.Add("GET", "/product", &MerchantApi::ListProducts);
  router_.Add("GET", "/product/{id}", &MerchantApi::GetProduct);
  router_.Add("GET", "/price", &MerchantApi::ListPrices);
  router_.Add("GET", "/price/{id}", &MerchantApi::GetPrice);
  router_.Add("POST", "/product/image/upload",
              &MerchantApi::UploadProductImage);
  router_.Add("POST", "/product", &MerchantApi::CreateProduct);
  router_.Add("POST", "/price", &MerchantApi::CreatePrice);
  router_.Add("PUT", "/price/{id}", &MerchantApi::UpdatePrice);
  router_.Add("GET", "/coupon", &MerchantApi::ListCoupons);
  router_.Add("POST", "/coupon", &MerchantApi::CreateCoupon);
  router_.Add("GET", "/coupon/{couponId}", &MerchantApi::GetCoupon);
  router_.Add("PUT", "/coupon/{couponId}/name", &MerchantApi::RenameCoupon);
  router_.Add("GET", "/promotion-code/coupon/{couponId}",
              &MerchantApi::ListPromotionCodes);
  router_.Add("POST", "/promotion-code/{id}",
              &MerchantApi::CreatePromotionCode);
  router_.Add("GET", "/promotion-code/{id}", &MerchantApi::GetPromotionCode);
  router_.Add("PUT", "/promotion-code/{promotionCodeId}/active",
              &MerchantApi::ActivatePromotionCode);
  router_.Add("PUT", "/promotion-code/{promotionCodeId}/deactivate",
              &MerchantApi::DeactivatePromotionCode);
  router_.Add("GET", "/subscription/test-clocks/list",
              &MerchantApi::ListTestClocks);
  router_.Add("POST", "/subscription/test-clocks",
              &MerchantApi::CreateTestClock);
  router_.Add("GET", "/subscription/test-clocks/{clockId}",
              &MerchantApi::GetTestClock);
  router_.Add("POST", "/subscription/test-clocks/{clockId}/advance",
              &MerchantApi::AdvanceTestClock);
  router_.Add("POST", "/subscription/test-clocks/{clockId}/complete",
              &MerchantApi::CompleteTestClock);
  webhooks_ = std::make_unique<WebhookEndpoints>(options_.clock);
  // Each route calls the same-named WebhookEndpoints handler.
  using WebhookHandler = absl::StatusOr<std::string> (WebhookEndpoints::*)(
      const ApiRequest&, const Params&);
  auto webhook = [](WebhookHandler handler) -> Handler {
    return [handler](MerchantApi& api, const ApiRequest& request,
                     const Params& params) {
      return ((*api.webhooks_).*handler)(request, params);
    };
  };
  router_.Add("GET", "/webhook/events",
              webhook(&WebhookEndpoints::EventTypes));
  router_.Add("GET", "/webhook/endpoints", webhook(&WebhookEndpoints::List));
  router_.Add("POST", "/webhook/endpoints",
              webhook(&WebhookEndpoints::Create));
  router_.Add("PUT", "/webhook/endpoints/ensure",
              webhook(&WebhookEndpoints::Ensure));
  router_.Add("GET", "/webhook/endpoints/{id}",
              webhook(&WebhookEndpoints::Get));
  router_.Add("PATCH", "/webhook/endpoints/{id}",
              webhook(&WebhookEndpoints::Update));
  router_.Add("DELETE", "/webhook/endpoints/{id}",
              webhook(&WebhookEndpoints::Delete));
  router_.Add("POST", "/webhook/endpoints/{id}/enable",
              webhook(&WebhookEndpoints::Enable));
  router_.Add("POST", "/webhook/endpoints/{id}/disable",
              webhook(&WebhookEndpoints::Disable));
  router_.Add("POST", "/webhook/endpoints/{id}/rotate-secret",
              webhook(&WebhookEndpoints::RotateSecret));
}

MerchantApi::~MerchantApi() = default;

std::vector<RegisteredWebhookEndpoint> MerchantApi::EnabledWebhookEndpoints()
    const {
  return webhooks_->Enabled();
}

ApiResponse MerchantApi::Handle(const ApiRequest& request) {
  const Router<Handler>::Match match =
      router_.Find(request.method, request.path);
  if (match.handler == nullptr) {
    const bool known = match.path_known;
    return ApiResponse{
        known ? 405 : 404,
        ErrorEnvelope(
            known ? kCodeMethodNotAllowed : kCodeNotFound,
            absl::StrCat(known ? "method not allowed: " : "no such endpoint: ",
                         request.method, " /api", request.path))};
  }
  absl::StatusOr<std::string> body =
      (*match.handler)(*this, request, match.params);
  if (options_.on_event) {
    std::vector<std::pair<std::string, std::string>> events;
    {
      absl::MutexLock lock(&mu_);
      events.swap(state_->pending_events);
    }
    for (auto& [type, json] : events) options_.on_event(type, std::move(json));
  }
  if (!body.ok()) return ErrorResponse(body.status());
  return ApiResponse{200, *std::move(body)};
}

// Status code -> envelope code:
//   InvalidArgument    -> 400 (validation; CUSTOMER_NOT_FOUND,
//   CUSTOMER_IDENTIFIER_NOT_MATCHED) NotFound           -> 404 OutOfRange ->
//   90101401 (refund above the refundable balance) FailedPrecondition ->
//   90101402 (state forbids the operation) anything else      -> 500
ApiResponse MerchantApi::ErrorResponse(const absl::Status& status) const {
  int code = kCodeInternal;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      code = kCodeBadRequest;
      break;
    case absl::StatusCode::kNotFound:
      code = kCodeNotFound;
      break;
    case absl::StatusCode::kOutOfRange:
      code = kCodeRefundExceedsRefundable;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = kCodeInvalidState;
      break;
    default:
      break;
  }
  int http_status = 200;
  if (options_.http_status_errors) {
    http_status = code == kCodeNotFound   ? 404
                  : code == kCodeInternal ? 500
                                          : 400;
  }
  return ApiResponse{http_status, ErrorEnvelope(code, status.message())};
}

void MerchantApi::Emit(const std::string& type,
                       absl::FunctionRef<void(JsonWriter&)> write_members) {
  if (options_.on_event) {
    state_->pending_events.emplace_back(type, JsonObject(write_members));
  }
}

void MerchantApi::EmitOrderEvents(const std::string& order_id) {
  const Order& order = state_->orders.at(order_id);
  const auto write = [&order](JsonWriter& writer) {
    WriteOrder(writer, order);
  };
  Emit("order.created", write);
  if (order.status == "success") {
    Emit("order.succeeded", write);
  } else if (order.status == "failed") {
    Emit("order.failed", write);
  } else if (order.status == "requires_action") {
    Emit("order.next_action", write);
  }
}

void MerchantApi::EmitSession(const std::string& type,
                              const std::string& session_id) {
  const CheckoutSession& session = state_->sessions.at(session_id);
  const absl::Time now = options_.clock();
  Emit(type,
       [&](JsonWriter& writer) { state_->WriteSession(writer, session, now); });
}

void MerchantApi::EmitSubscription(const std::string& type,
                                   const std::string& subscription_id) {
  const Subscription& subscription = state_->subscriptions.at(subscription_id);
  const Price& price = *state_->FindPrice(subscription.price_id);
  const Product& product = *state_->FindProduct(subscription.product_id);
  Emit(type, [&](JsonWriter& writer) {
    WriteSubscription(writer, subscription, price, product);
  });
}

void MerchantApi::EmitInvoice(const std::string& type,
                              const std::string& invoice_id) {
  const Invoice& invoice = state_->invoices.at(invoice_id);
  const Subscription& subscription =
      state_->subscriptions.at(invoice.subscription_id);
  const Price& price = *state_->FindPrice(subscription.price_id);
  const Product& product = *state_->FindProduct(subscription.product_id);
  Emit(type, [&](JsonWriter& writer) {
    WriteInvoice(writer, invoice, subscription, price, product);
  });
}

absl::StatusOr<std::string> MerchantApi::CreateCheckoutSession(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  CheckoutSession session;
  GATEWAY_ASSIGN_OR_RETURN(session.amount,
                           fields.RequiredAmount("originalAmount"));
  GATEWAY_ASSIGN_OR_RETURN(session.currency,
                           fields.RequiredString("originalCurrency"));
  GATEWAY_RETURN_IF_ERROR(
      ValidateCurrency("originalCurrency", session.currency));
  GATEWAY_ASSIGN_OR_RETURN(session.merchant_reference_id,
                           fields.OptionalString("merchantReferenceId"));
  GATEWAY_ASSIGN_OR_RETURN(session.price_id, fields.OptionalString("priceId"));
  GATEWAY_ASSIGN_OR_RETURN(session.product_id,
                           fields.OptionalString("productId"));
  if (!session.price_id.empty() && session.product_id.empty()) {
    return absl::InvalidArgumentError(
        "productId is required when priceId is provided");
  }
  GATEWAY_ASSIGN_OR_RETURN(session.ui_mode, fields.OptionalString("uiMode"));
  if (session.ui_mode.empty()) session.ui_mode = "hostedPage";
  GATEWAY_RETURN_IF_ERROR(
      ValidateEnum("uiMode", session.ui_mode, {"hostedPage", "elements"}));
  GATEWAY_ASSIGN_OR_RETURN(session.return_url,
                           fields.OptionalString("returnUrl"));
  if (session.ui_mode == "elements" && session.return_url.empty()) {
    return absl::InvalidArgumentError(
        "returnUrl is required when uiMode is elements");
  }
  GATEWAY_ASSIGN_OR_RETURN(session.success_url,
                           fields.OptionalString("successUrl"));
  GATEWAY_ASSIGN_OR_RETURN(session.cancel_url,
                           fields.OptionalString("cancelUrl"));
  GATEWAY_ASSIGN_OR_RETURN(std::string method,
                           fields.OptionalString("paymentMethodType"));
  if (!method.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        ValidateEnum("paymentMethodType", method, SessionPaymentMethods()));
  }
  if (const rapidjson::Value* blacklist =
          fields.Find("paymentMethodTypeBlackList")) {
    if (!blacklist->IsArray()) {
      return absl::InvalidArgumentError(
          "paymentMethodTypeBlackList must be an array");
    }
    for (const rapidjson::Value& item : blacklist->GetArray()) {
      const std::string value = item.IsString() ? item.GetString() : "";
      GATEWAY_RETURN_IF_ERROR(ValidateEnum("paymentMethodTypeBlackList", value,
                                           SessionPaymentMethods()));
    }
  }
  GATEWAY_ASSIGN_OR_RETURN(session.price_data,
                           ReadPriceDataList(fields, "priceDataList"));
  GATEWAY_RETURN_IF_ERROR(fields.OptionalBool("allowPromotionCodes").status());
  GATEWAY_RETURN_IF_ERROR(fields.OptionalString("promotionCode").status());
  GATEWAY_ASSIGN_OR_RETURN(CustomerRef customer_ref, ReadCustomerRef(fields));

  absl::MutexLock lock(&mu_);
  if (!session.price_id.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        state_->ResolvePrice(session.price_id, session.product_id, "")
            .status());
  } else if (!session.product_id.empty() &&
             state_->FindProduct(session.product_id) == nullptr) {
    return NotFound("product", session.product_id);
  }
  GATEWAY_ASSIGN_OR_RETURN(Customer * customer,
                           state_->ResolveCustomer(customer_ref));
  const absl::Time now = options_.clock();
  session.id = state_->NewId("sess_");
  session.token = state_->NewId("tok_");
  session.customer_id = customer->id;
  session.created = now;
  session.expires = now + kCheckoutSessionLifetime;
  session.return_url = absl::StrReplaceAll(
      session.return_url, {{"{ELEMENTS_SESSION_ID}", session.id}});
  const CheckoutSession& stored = Store(state_->sessions, std::move(session));
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "sessionId", stored.id);
    WriteString(writer, "tokenValue", stored.token);
    WriteString(writer, "customerId", stored.customer_id);
    WriteAmount(writer, "originalAmount", stored.amount);
    WriteString(writer, "originalCurrency", stored.currency);
    WriteString(writer, "uiMode", stored.ui_mode);
    WriteStringIfSet(writer, "returnUrl", stored.return_url);
    WriteString(writer, "url",
                absl::StrCat(options_.checkout_base_url, "/pay/", stored.id));
    WriteStringIfSet(writer, "merchantReferenceId",
                     stored.merchant_reference_id);
    WriteString(writer, "expireTime", IsoTime(stored.expires));
  });
}

absl::StatusOr<std::string> MerchantApi::GetCheckoutSession(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const CheckoutSession* session = State::Find(state_->sessions, params[0]);
  if (session == nullptr) return NotFound("checkout session", params[0]);
  const absl::Time now = options_.clock();
  return DataEnvelope(
      [&](JsonWriter& writer) { state_->WriteSession(writer, *session, now); });
}

absl::StatusOr<std::string> MerchantApi::CreatePayment(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Order order;
  GATEWAY_ASSIGN_OR_RETURN(std::string instrument_id,
                           fields.RequiredString("paymentInstrumentId"));
  GATEWAY_ASSIGN_OR_RETURN(std::string method,
                           fields.RequiredString("paymentMethodType"));
  GATEWAY_RETURN_IF_ERROR(
      ValidateEnum("paymentMethodType", method, PaymentMethods()));
  GATEWAY_RETURN_IF_ERROR(fields.RequiredString("returnUrl").status());
  GATEWAY_ASSIGN_OR_RETURN(order.price_id, fields.OptionalString("priceId"));
  GATEWAY_ASSIGN_OR_RETURN(order.product_id,
                           fields.OptionalString("productId"));
  GATEWAY_ASSIGN_OR_RETURN(order.amount, fields.OptionalAmount("amount"));
  GATEWAY_ASSIGN_OR_RETURN(order.currency, fields.OptionalString("currency"));
  if (!order.price_id.empty()) {
    if (order.product_id.empty()) {
      return absl::InvalidArgumentError(
          "productId is required when priceId is provided");
    }
  } else {
    if (order.amount.empty()) {
      return absl::InvalidArgumentError(
          "amount is required when priceId is not provided");
    }
    if (order.currency.empty()) {
      return absl::InvalidArgumentError(
          "currency is required when priceId is not provided");
    }
    GATEWAY_RETURN_IF_ERROR(ValidateCurrency("currency", order.currency));
  }
  GATEWAY_ASSIGN_OR_RETURN(order.price_data,
                           ReadPriceDataList(fields, "priceDataList"));
  GATEWAY_ASSIGN_OR_RETURN(order.merchant_reference_id,
                           fields.OptionalString("merchantReferenceId"));
  GATEWAY_ASSIGN_OR_RETURN(order.metadata,
                           fields.OptionalStringMap("metadata"));
  GATEWAY_RETURN_IF_ERROR(ValidateClientDevice(fields));
  GATEWAY_ASSIGN_OR_RETURN(CustomerRef customer_ref, ReadCustomerRef(fields));

  absl::MutexLock lock(&mu_);
  if (!order.price_id.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(
        const Price* price,
        state_->ResolvePrice(order.price_id, order.product_id, "one_time"));
    order.amount = price->unit_amount;
    order.currency = price->currency;
  }
  GATEWAY_ASSIGN_OR_RETURN(Customer * customer,
                           state_->ResolveCustomer(customer_ref));
  GATEWAY_ASSIGN_OR_RETURN(
      const Instrument* instrument,
      state_->FindInstrumentFor(instrument_id, *customer, method));
  const absl::Time now = options_.clock();
  order.id = state_->NewId("ord_");
  order.type = "onetime";
  order.customer_id = customer->id;
  order.customer_email = customer->email;
  const int status = state_->Charge(*instrument, now, &order);
  order.session_id = state_->AddImplicitSession(order, now).id;
  state_->order_ids.push_back(order.id);
  const Order& stored = Store(state_->orders, std::move(order));
  EmitOrderEvents(stored.id);
  if (status == 1) EmitSession("session.complete", stored.session_id);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "orderId", stored.id);
    WriteString(writer, "sessionId", stored.session_id);
    WriteInt(writer, "status", status);
    if (status == 5) WriteAction(writer, stored, options_.checkout_base_url);
    WriteAmount(writer, "amount", stored.amount);
    WriteString(writer, "currency", stored.currency);
  });
}

absl::StatusOr<std::string> MerchantApi::RefreshQrCode(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  Order* order = State::Find(state_->orders, params[0]);
  if (order == nullptr) return NotFound("order", params[0]);
  if (order->payment_method_type != "CASHAPP") {
    return absl::InvalidArgumentError(
        "QR code refresh is only supported for CASHAPP orders");
  }
  if (order->status != "requires_action") {
    return InvalidState(
        absl::StrCat("order ", order->id, " is ", order->status,
                     "; only orders awaiting a wallet action can refresh"));
  }
  ++order->qr_version;
  order->action_expires = options_.clock() + kWalletQrLifetime;
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "orderId", order->id);
    WriteAction(writer, *order, options_.checkout_base_url);
  });
}

absl::StatusOr<std::string> MerchantApi::CreatePaymentInstrument(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Instrument instrument;
  GATEWAY_ASSIGN_OR_RETURN(instrument.type,
                           fields.RequiredString("paymentInstrumentType"));
  if (instrument.type == "CARD") {
    return absl::InvalidArgumentError(
        "paymentInstrumentType CARD is not supported: cards are bound through "
        "hosted pages");
  }
  GATEWAY_RETURN_IF_ERROR(ValidateEnum("paymentInstrumentType", instrument.type,
                                       InstrumentTypes()));
  GATEWAY_RETURN_IF_ERROR(
      fields.OptionalString("subPaymentMethodType").status());
  GATEWAY_RETURN_IF_ERROR(fields.OptionalStringMap("metadata").status());
  GATEWAY_ASSIGN_OR_RETURN(std::string customer_name,
                           fields.OptionalString("customerName"));
  GATEWAY_ASSIGN_OR_RETURN(CustomerRef customer_ref, ReadCustomerRef(fields));

  absl::MutexLock lock(&mu_);
  GATEWAY_ASSIGN_OR_RETURN(Customer * customer,
                           state_->ResolveCustomer(customer_ref));
  if (!customer_name.empty()) customer->name = customer_name;
  instrument.id = state_->NewId("pi_");
  instrument.customer_id = customer->id;
  instrument.account_tag = absl::StrCat(absl::AsciiStrToLower(instrument.type),
                                        "-", instrument.id.substr(3, 8));
  instrument.created_ms = Millis(options_.clock());
  const Instrument& stored = Store(state_->instruments, std::move(instrument));
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteInstrument(writer, stored); });
}

absl::StatusOr<std::string> MerchantApi::GetOrder(const ApiRequest& /*request*/,
                                                  const Params& params) {
  absl::MutexLock lock(&mu_);
  const Order* order = State::Find(state_->orders, params[0]);
  if (order == nullptr) return NotFound("order", params[0]);
  return DataEnvelope([&](JsonWriter& writer) { WriteOrder(writer, *order); });
}

absl::StatusOr<std::string> MerchantApi::ListOrders(const ApiRequest& request,
                                                    const Params& /*params*/) {
  const std::map<std::string, std::string> query =
      ParseQuery(request.query_string);
  GATEWAY_ASSIGN_OR_RETURN(Page page, ReadPage(query, kOrderPageSizeDefault,
                                               kOrderPageSizeMax, true));
  const std::string subscription_id = QueryValue(query, "subscriptionId");
  const std::string customer_id = QueryValue(query, "customerId");
  absl::MutexLock lock(&mu_);
  std::vector<const Order*> rows;  // Newest first.
  for (auto it = state_->order_ids.rbegin(); it != state_->order_ids.rend();
       ++it) {
    const Order& order = state_->orders.at(*it);
    if (!subscription_id.empty() && order.subscription_id != subscription_id)
      continue;
    if (!customer_id.empty() && order.customer_id != customer_id) continue;
    rows.push_back(&order);
  }
  return PagedList(rows, page, WriteOrder);
}

absl::StatusOr<std::string> MerchantApi::CreateRefund(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Refund refund;
  GATEWAY_ASSIGN_OR_RETURN(refund.order_id, fields.RequiredString("orderId"));
  GATEWAY_ASSIGN_OR_RETURN(refund.merchant_refund_id,
                           fields.RequiredString("refundMerchantOrderId"));
  GATEWAY_ASSIGN_OR_RETURN(refund.amount,
                           fields.RequiredAmount("refundAmount"));
  GATEWAY_ASSIGN_OR_RETURN(refund.reason_type,
                           fields.OptionalInt("refundReasonType"));
  if (refund.reason_type.has_value() &&
      (*refund.reason_type < 0 || *refund.reason_type > 3)) {
    return absl::InvalidArgumentError(
        "refundReasonType must be one of 0, 1, 2, 3");
  }
  GATEWAY_ASSIGN_OR_RETURN(refund.remark, fields.OptionalString("remark"));
  if (refund.remark.size() > kRemarkMaxLength) {
    return absl::InvalidArgumentError("remark must be at most 500 characters");
  }
  GATEWAY_ASSIGN_OR_RETURN(const Decimal amount, Decimal::Parse(refund.amount));

  absl::MutexLock lock(&mu_);
  // refundMerchantOrderId is Clink's idempotency key: a repeat returns the
  // existing refund.
  if (auto it = state_->refund_by_merchant_id.find(refund.merchant_refund_id);
      it != state_->refund_by_merchant_id.end()) {
    const Refund& existing = state_->refunds.at(it->second);
    return DataEnvelope(
        [&](JsonWriter& writer) { WriteRefund(writer, existing); });
  }
  Order* order = State::Find(state_->orders, refund.order_id);
  if (order == nullptr) return NotFound("order", refund.order_id);
  if (order->status != "success" && order->status != "partial_refunded") {
    return InvalidState(absl::StrCat("order ", order->id, " is ", order->status,
                                     " and cannot be refunded"));
  }
  GATEWAY_ASSIGN_OR_RETURN(const Decimal order_amount,
                           Decimal::Parse(order->amount));
  const Decimal refundable = order_amount - order->refunded;
  if (amount > refundable) {
    return absl::OutOfRangeError(absl::StrCat(
        "refund amount ", refund.amount, " exceeds the refundable amount ",
        refundable.ToString(), " of order ", order->id));
  }
  order->refunded = order->refunded + amount;
  order->status =
      order->refunded == order_amount ? "refunded" : "partial_refunded";
  refund.id = state_->NewId("rfd_");
  refund.customer_id = order->customer_id;
  refund.currency = order->currency;
  refund.status = "success";
  refund.payment_instrument_id = order->payment_instrument_id;
  refund.arn = absl::StrCat(
      "74", absl::Uniform<uint64_t>(state_->bitgen, 1000000000000000ULL,
                                    9999999999999999ULL));
  refund.create_time_ms = Millis(options_.clock());
  state_->refund_by_merchant_id[refund.merchant_refund_id] = refund.id;
  const Refund& stored = Store(state_->refunds, std::move(refund));
  const auto write = [&stored](JsonWriter& writer) {
    WriteRefund(writer, stored);
  };
  Emit("refund.created", write);
  Emit("refund.succeeded", write);  // Refunds complete at once.
  return DataEnvelope(write);
}

absl::StatusOr<std::string> MerchantApi::GetRefund(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Refund* refund = State::Find(state_->refunds, params[0]);
  if (refund == nullptr) return NotFound("refund", params[0]);
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteRefund(writer, *refund); });
}

absl::StatusOr<std::string> MerchantApi::CreateAgentPaymentSession(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  AgentSession session;
  GATEWAY_ASSIGN_OR_RETURN(session.customer_email,
                           fields.RequiredString("customerEmail"));
  GATEWAY_ASSIGN_OR_RETURN(session.amount, fields.RequiredAmount("amount"));
  GATEWAY_ASSIGN_OR_RETURN(session.currency, fields.RequiredString("currency"));
  GATEWAY_RETURN_IF_ERROR(ValidateCurrency("currency", session.currency));
  GATEWAY_ASSIGN_OR_RETURN(const Decimal amount,
                           Decimal::Parse(session.amount));
  GATEWAY_ASSIGN_OR_RETURN(const Decimal minimum, Decimal::Parse("0.5"));
  if (amount < minimum)
    return absl::InvalidArgumentError("amount must be at least 0.5");

  absl::MutexLock lock(&mu_);
  GATEWAY_ASSIGN_OR_RETURN(
      Customer * customer,
      state_->ResolveCustomer(CustomerRef{"", session.customer_email, ""}));
  const absl::Time now = options_.clock();
  session.id = state_->NewId("sess_");
  session.customer_id = customer->id;
  session.created = now;
  session.expires = now + kAgentSessionLifetime;
  const AgentSession& stored =
      Store(state_->agent_sessions, std::move(session));
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "sessionId", stored.id);
    WriteString(writer, "expireTime", IsoTime(stored.expires));
  });
}

absl::StatusOr<std::string> MerchantApi::GetAgentPaymentSession(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const AgentSession* session = State::Find(state_->agent_sessions, params[0]);
  if (session == nullptr) return NotFound("payment session", params[0]);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "sessionId", session->id);
    WriteString(writer, "customerEmail", session->customer_email);
    WriteString(writer, "customerId", session->customer_id);
    WriteAmount(writer, "amount", session->amount);
    WriteString(writer, "currency", session->currency);
    WriteString(writer, "merchantId", kMerchantId);
    WriteString(writer, "tenantId", kTenantId);
    WriteString(writer, "createTime", IsoTime(session->created));
    WriteString(writer, "expireTime", IsoTime(session->expires));
  });
}

absl::StatusOr<std::string> MerchantApi::CreateBillingSession(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::string customer_id,
                           fields.RequiredString("customerId"));
  GATEWAY_RETURN_IF_ERROR(fields.OptionalString("returnUrl").status());
  absl::MutexLock lock(&mu_);
  if (State::Find(state_->customers, customer_id) == nullptr) {
    return absl::InvalidArgumentError("CUSTOMER_NOT_FOUND");
  }
  const std::string url = absl::StrCat(options_.portal_base_url, "/session/",
                                       state_->NewId("emu_portal_"));
  const int64_t expires_at = Millis(options_.clock() + kPortalLinkLifetime);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "url", url);
    WriteInt(writer, "expiresAt", expires_at);
  });
}

absl::StatusOr<std::string> MerchantApi::CreateSubscription(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Subscription subscription;
  GATEWAY_ASSIGN_OR_RETURN(subscription.price_id,
                           fields.RequiredString("priceId"));
  GATEWAY_ASSIGN_OR_RETURN(subscription.product_id,
                           fields.RequiredString("productId"));
  GATEWAY_ASSIGN_OR_RETURN(subscription.payment_instrument_id,
                           fields.RequiredString("paymentInstrumentId"));
  GATEWAY_ASSIGN_OR_RETURN(subscription.payment_method_type,
                           fields.RequiredString("paymentMethodType"));
  GATEWAY_RETURN_IF_ERROR(ValidateEnum("paymentMethodType",
                                       subscription.payment_method_type,
                                       SubscriptionPaymentMethods()));
  GATEWAY_ASSIGN_OR_RETURN(subscription.currency,
                           fields.RequiredString("paymentCurrency"));
  subscription.currency = absl::AsciiStrToUpper(subscription.currency);
  GATEWAY_RETURN_IF_ERROR(
      ValidateCurrency("paymentCurrency", subscription.currency));
  GATEWAY_RETURN_IF_ERROR(fields.RequiredString("returnUrl").status());
  GATEWAY_ASSIGN_OR_RETURN(subscription.merchant_reference,
                           fields.OptionalString("merchantReferenceId"));
  GATEWAY_ASSIGN_OR_RETURN(subscription.metadata,
                           fields.OptionalStringMap("metadata"));
  GATEWAY_RETURN_IF_ERROR(ValidateClientDevice(fields));
  GATEWAY_ASSIGN_OR_RETURN(CustomerRef customer_ref, ReadCustomerRef(fields));

  absl::MutexLock lock(&mu_);
  const Product* product = state_->FindProduct(subscription.product_id);
  if (product == nullptr) return NotFound("product", subscription.product_id);
  GATEWAY_ASSIGN_OR_RETURN(
      const Price* price,
      state_->ResolvePrice(subscription.price_id, subscription.product_id,
                           "recurring"));
  if (price->currency != subscription.currency) {
    return absl::InvalidArgumentError(
        absl::StrCat("paymentCurrency ", subscription.currency,
                     " is not supported by price ", price->id));
  }
  GATEWAY_ASSIGN_OR_RETURN(subscription.scheduled_phases_json,
                           ReadScheduledPhases(fields, state_->prices));
  GATEWAY_ASSIGN_OR_RETURN(Customer * customer,
                           state_->ResolveCustomer(customer_ref));
  GATEWAY_ASSIGN_OR_RETURN(
      const Instrument* instrument,
      state_->FindInstrumentFor(subscription.payment_instrument_id, *customer,
                                subscription.payment_method_type));

  const absl::Time now = options_.clock();
  subscription.id = state_->NewId("sub_");
  subscription.customer_id = customer->id;
  subscription.invoice_item_id = state_->NewId("ii_");
  subscription.create_time_ms = Millis(now);
  subscription.period_start_ms = Millis(now);
  subscription.period_end_ms = Millis(AddInterval(now, *price));

  Invoice invoice;
  invoice.id = state_->NewId("inv_");
  invoice.subscription_id = subscription.id;
  invoice.customer_id = customer->id;
  invoice.create_time_ms = Millis(now);

  Order order;
  order.id = state_->NewId("ord_");
  order.type = "recurring";
  order.merchant_reference_id = subscription.merchant_reference;
  order.invoice_id = invoice.id;
  order.subscription_id = subscription.id;
  order.customer_id = customer->id;
  order.customer_email = customer->email;
  order.product_id = product->id;
  order.price_id = price->id;
  order.amount = price->unit_amount;
  order.currency = price->currency;
  order.metadata = subscription.metadata;
  const int status = state_->Charge(*instrument, now, &order);
  invoice.order_id = order.id;
  invoice.status = status == 1 ? "paid" : "open";
  subscription.status = status == 1 ? "active" : "incomplete";
  CheckoutSession& session = state_->AddImplicitSession(order, now);
  session.subscription_id = subscription.id;
  session.invoice_id = invoice.id;
  order.session_id = session.id;
  subscription.session_id = session.id;

  state_->order_ids.push_back(order.id);
  const Order& stored_order = Store(state_->orders, std::move(order));
  Store(state_->invoices, std::move(invoice));
  const Subscription& stored =
      Store(state_->subscriptions, std::move(subscription));
  EmitSubscription("subscription.created", stored.id);
  EmitOrderEvents(stored_order.id);
  if (status == 1) {
    EmitInvoice("invoice.paid", stored_order.invoice_id);
    EmitSubscription("subscription.activated", stored.id);
    EmitSession("session.complete", stored.session_id);
  } else {
    EmitInvoice("invoice.open", stored_order.invoice_id);
  }
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "subscriptionId", stored.id);
    WriteString(writer, "sessionId", stored.session_id);
    WriteInt(writer, "status", status);
    if (status == 5)
      WriteAction(writer, stored_order, options_.checkout_base_url);
    WriteAmount(writer, "amount", stored_order.amount);
    WriteString(writer, "currency", stored_order.currency);
    WriteString(writer, "orderId", stored_order.id);
    WriteString(writer, "invoiceId", stored_order.invoice_id);
  });
}

absl::StatusOr<std::string> MerchantApi::GetSubscription(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Subscription* subscription =
      State::Find(state_->subscriptions, params[0]);
  if (subscription == nullptr) return NotFound("subscription", params[0]);
  const Price& price = *state_->FindPrice(subscription->price_id);
  const Product& product = *state_->FindProduct(subscription->product_id);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteSubscription(writer, *subscription, price, product);
  });
}

absl::StatusOr<std::string> MerchantApi::CancelSubscription(
    const ApiRequest& request, const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::string reason, fields.RequiredString("reason"));
  if (reason.size() > kCancelReasonMaxLength) {
    return absl::InvalidArgumentError("reason must be at most 255 characters");
  }
  GATEWAY_ASSIGN_OR_RETURN(std::string reason_code,
                           fields.OptionalString("cancelReasonCode"));
  if (!reason_code.empty()) {
    GATEWAY_RETURN_IF_ERROR(
        ValidateEnum("cancelReasonCode", reason_code, CancelReasonCodes()));
  }
  GATEWAY_ASSIGN_OR_RETURN(std::optional<bool> immediately,
                           fields.OptionalBool("cancelImmediately"));

  absl::MutexLock lock(&mu_);
  Subscription* subscription = State::Find(state_->subscriptions, params[0]);
  if (subscription == nullptr) return NotFound("subscription", params[0]);
  if (subscription->status == "cancelled") {
    return InvalidState(absl::StrCat("subscription ", subscription->id,
                                     " is already cancelled"));
  }
  const int64_t now_ms = Millis(options_.clock());
  subscription->canceled_at_ms = now_ms;
  subscription->cancel_reason = reason;
  if (immediately.value_or(false)) {
    subscription->status = "cancelled";
    subscription->cancel_at_ms = now_ms;
    subscription->cancel_at_period_end = false;
  } else {
    subscription->cancel_at_ms = subscription->period_end_ms;
    subscription->cancel_at_period_end = true;
  }
  EmitSubscription(subscription->status == "cancelled"
                       ? "subscription.cancelled"
                       : "subscription.updated.cancel_at_period_end_set",
                   subscription->id);
  const Price& price = *state_->FindPrice(subscription->price_id);
  const Product& product = *state_->FindProduct(subscription->product_id);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteSubscription(writer, *subscription, price, product);
  });
}

absl::StatusOr<std::string> MerchantApi::GetInvoice(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Invoice* invoice = State::Find(state_->invoices, params[0]);
  if (invoice == nullptr) return NotFound("invoice", params[0]);
  const Subscription& subscription =
      state_->subscriptions.at(invoice->subscription_id);
  const Price& price = *state_->FindPrice(subscription.price_id);
  const Product& product = *state_->FindProduct(subscription.product_id);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteInvoice(writer, *invoice, subscription, price, product);
  });
}

absl::StatusOr<std::string> MerchantApi::ListProducts(
    const ApiRequest& request, const Params& /*params*/) {
  const std::map<std::string, std::string> query =
      ParseQuery(request.query_string);
  GATEWAY_ASSIGN_OR_RETURN(Page page, ReadPage(query, kCatalogPageSizeDefault,
                                               kCatalogPageSizeMax, false));
  absl::MutexLock lock(&mu_);
  std::vector<const Product*> rows;
  for (const Product& product : state_->products) rows.push_back(&product);
  const std::vector<Price>& prices = state_->prices;
  return PagedList(rows, page, [&](JsonWriter& writer, const Product& product) {
    WriteProduct(writer, product, prices);
  });
}

absl::StatusOr<std::string> MerchantApi::GetProduct(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Product* product = state_->FindProduct(params[0]);
  if (product == nullptr) return NotFound("product", params[0]);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteProduct(writer, *product, state_->prices);
  });
}

absl::StatusOr<std::string> MerchantApi::ListPrices(const ApiRequest& request,
                                                    const Params& /*params*/) {
  const std::map<std::string, std::string> query =
      ParseQuery(request.query_string);
  GATEWAY_ASSIGN_OR_RETURN(Page page, ReadPage(query, kCatalogPageSizeDefault,
                                               kCatalogPageSizeMax, false));
  const std::string product_id = QueryValue(query, "productId");
  const std::string active = QueryValue(query, "active");
  if (!active.empty() && active != "true" && active != "false") {
    return absl::InvalidArgumentError("active must be true or false");
  }
  absl::MutexLock lock(&mu_);
  std::vector<const Price*> rows;
  for (const Price& price : state_->prices) {
    if (!product_id.empty() && price.product_id != product_id) continue;
    if (!active.empty() && price.active != (active == "true")) continue;
    rows.push_back(&price);
  }
  return PagedList(rows, page, WritePrice);
}

absl::StatusOr<std::string> MerchantApi::GetPrice(const ApiRequest& /*request*/,
                                                  const Params& params) {
  absl::MutexLock lock(&mu_);
  const Price* price = state_->FindPrice(params[0]);
  if (price == nullptr) return NotFound("price", params[0]);
  return DataEnvelope([&](JsonWriter& writer) { WritePrice(writer, *price); });
}

// Stores the image (its bytes are not kept) and hands out an ossId and a URL.
// One part `file` with a jpg, jpeg, png, gif or webp file name, at most 5 MiB.
absl::StatusOr<std::string> MerchantApi::UploadProductImage(
    const ApiRequest& request, const Params& /*params*/) {
  GATEWAY_ASSIGN_OR_RETURN(std::vector<FormPart> parts,
                           ParseMultipart(request.content_type, request.body));
  if (parts.size() != 1 || parts[0].name != "file") {
    return absl::InvalidArgumentError("expected exactly one part, file");
  }
  const FormPart& file = parts[0];
  if (file.filename.empty()) {
    return absl::InvalidArgumentError("file has no filename");
  }
  const size_t dot = file.filename.rfind('.');
  const std::string extension =
      dot == std::string::npos
          ? ""
          : absl::AsciiStrToLower(file.filename.substr(dot + 1));
  static const std::set<std::string> kExtensions = {"jpg", "jpeg", "png", "gif",
                                                    "webp"};
  if (kExtensions.count(extension) == 0) {
    return absl::InvalidArgumentError(
        "file must be a jpg, jpeg, png, gif or webp image");
  }
  if (file.data.empty() || file.data.size() > kMaxImageBytes) {
    return absl::InvalidArgumentError("file must be 1 byte to 5 MB");
  }
  absl::MutexLock lock(&mu_);
  const std::string oss_id = state_->NewId("oss_");
  State::Image& image = state_->images[oss_id];
  image.url = absl::StrCat("https://cdn.clink-emulator.invalid/oss/", oss_id,
                           ".", extension);
  image.file_name = file.filename;
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "url", image.url);
    WriteString(writer, "fileName", image.file_name);
    WriteString(writer, "ossId", oss_id);
  });
}

// `image` must be an ossId this merchant uploaded; the product shows its URL.
absl::StatusOr<std::string> MerchantApi::CreateProduct(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Product product;
  GATEWAY_ASSIGN_OR_RETURN(product.name, fields.RequiredString("name"));
  GATEWAY_ASSIGN_OR_RETURN(std::string oss_id, fields.RequiredString("image"));
  GATEWAY_ASSIGN_OR_RETURN(product.tax_category,
                           fields.RequiredString("taxCategory"));
  if (product.tax_category != "digital_goods_or_service" &&
      product.tax_category != "ebook" &&
      product.tax_category != "software_service") {
    return absl::InvalidArgumentError(
        "taxCategory must be digital_goods_or_service, ebook or "
        "software_service");
  }
  GATEWAY_ASSIGN_OR_RETURN(product.description,
                           fields.OptionalString("description"));
  GATEWAY_ASSIGN_OR_RETURN(product.default_price,
                           fields.OptionalString("defaultPrice"));
  GATEWAY_ASSIGN_OR_RETURN(product.localized_names,
                           fields.OptionalStringMap("localizedNames"));
  std::vector<std::pair<Price, std::optional<bool>>> new_prices;
  if (const rapidjson::Value* list = fields.Find("priceList");
      list != nullptr) {
    if (!list->IsArray()) {
      return absl::InvalidArgumentError("priceList must be an array");
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      const rapidjson::Value& item = (*list)[i];
      const std::string prefix = absl::StrCat("priceList[", i, "].");
      if (!item.IsObject()) {
        return absl::InvalidArgumentError(
            absl::StrCat("priceList[", i, "] must be an object"));
      }
      Price price;
      std::optional<bool> is_default;
      GATEWAY_RETURN_IF_ERROR(
          ReadPriceFields(JsonFields(item, prefix), true, &price, &is_default));
      new_prices.emplace_back(std::move(price), is_default);
    }
  }
  absl::MutexLock lock(&mu_);
  const auto image = state_->images.find(oss_id);
  if (image == state_->images.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", oss_id, " is not an uploaded image (ossId)"));
  }
  product.image = image->second.url;
  if (!product.default_price.empty() &&
      state_->FindPrice(product.default_price) == nullptr) {
    return NotFound("price", product.default_price);
  }
  product.id = state_->NewId("prd_");
  for (auto& [price, is_default] : new_prices) {
    price.id = state_->NewId("price_");
    price.snapshot_id = state_->NewId("pss_");
    price.product_id = product.id;
    if (is_default.value_or(false)) product.default_price = price.id;
    state_->prices.push_back(std::move(price));
  }
  state_->products.push_back(std::move(product));
  const Product& created = state_->products.back();
  return DataEnvelope([&](JsonWriter& writer) {
    WriteProduct(writer, created, state_->prices);
  });
}

absl::StatusOr<std::string> MerchantApi::CreatePrice(const ApiRequest& request,
                                                     const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Price price;
  GATEWAY_ASSIGN_OR_RETURN(price.product_id,
                           fields.RequiredString("productId"));
  std::optional<bool> is_default;
  GATEWAY_RETURN_IF_ERROR(ReadPriceFields(fields, true, &price, &is_default));
  absl::MutexLock lock(&mu_);
  Product* product = nullptr;
  for (Product& p : state_->products) {
    if (p.id == price.product_id) product = &p;
  }
  if (product == nullptr) return NotFound("product", price.product_id);
  price.id = state_->NewId("price_");
  price.snapshot_id = state_->NewId("pss_");
  if (is_default.value_or(false)) product->default_price = price.id;
  state_->prices.push_back(std::move(price));
  const Price& created = state_->prices.back();
  return DataEnvelope([&](JsonWriter& writer) { WritePrice(writer, created); });
}

// Each update makes a new snapshot (the price keeps its id).
absl::StatusOr<std::string> MerchantApi::UpdatePrice(const ApiRequest& request,
                                                     const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::string product_id,
                           fields.OptionalString("productId"));
  absl::MutexLock lock(&mu_);
  Price* price = nullptr;
  for (Price& p : state_->prices) {
    if (p.id == params[0]) price = &p;
  }
  if (price == nullptr) return NotFound("price", params[0]);
  if (!product_id.empty() && state_->FindProduct(product_id) == nullptr) {
    return NotFound("product", product_id);
  }
  Price updated = *price;
  if (!product_id.empty()) updated.product_id = product_id;
  std::optional<bool> is_default;
  GATEWAY_RETURN_IF_ERROR(
      ReadPriceFields(fields, false, &updated, &is_default));
  updated.snapshot_id = state_->NewId("pss_");
  *price = std::move(updated);
  if (is_default.has_value()) {
    for (Product& product : state_->products) {
      if (product.id != price->product_id) continue;
      if (*is_default) {
        product.default_price = price->id;
      } else if (product.default_price == price->id) {
        product.default_price.clear();
      }
    }
  }
  return DataEnvelope([&](JsonWriter& writer) { WritePrice(writer, *price); });
}

}  // namespace clink_gateway::emulator

// ---------------------------------------------------------------------------------------------
// Coupons and promotion codes.

namespace clink_gateway::emulator {

absl::StatusOr<std::string> MerchantApi::ListCoupons(const ApiRequest& request,
                                                     const Params& /*params*/) {
  const std::map<std::string, std::string> query =
      ParseQuery(request.query_string);
  GATEWAY_ASSIGN_OR_RETURN(Page page, ReadPage(query, kCouponPageSizeDefault,
                                               kCouponPageSizeMax, true));
  const std::string discount_type = QueryValue(query, "discountType");
  const std::string duration_type = QueryValue(query, "durationType");
  if (!discount_type.empty()) {
    GATEWAY_RETURN_IF_ERROR(ValidateEnum("discountType", discount_type,
                                         {"percentage", "fixed_amount"}));
  }
  if (!duration_type.empty()) {
    GATEWAY_RETURN_IF_ERROR(ValidateEnum("durationType", duration_type,
                                         {"once", "repeating", "forever"}));
  }
  absl::MutexLock lock(&mu_);
  std::vector<const Coupon*> rows;
  for (const std::string& id : state_->coupon_ids) {
    const Coupon& coupon = state_->coupons.at(id);
    if (!discount_type.empty() && coupon.discount_type != discount_type) {
      continue;
    }
    if (!duration_type.empty() && coupon.duration_type != duration_type) {
      continue;
    }
    rows.push_back(&coupon);
  }
  return PagedList(rows, page, WriteCouponInfo);
}

absl::StatusOr<std::string> MerchantApi::CreateCoupon(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Coupon coupon;
  GATEWAY_ASSIGN_OR_RETURN(coupon.name, fields.RequiredString("couponName"));
  if (coupon.name.size() > kNameMaxLength) {
    return absl::InvalidArgumentError(
        "couponName must be at most 255 characters");
  }
  GATEWAY_ASSIGN_OR_RETURN(coupon.discount_type,
                           fields.RequiredString("discountType"));
  GATEWAY_RETURN_IF_ERROR(ValidateEnum("discountType", coupon.discount_type,
                                       {"percentage", "fixed_amount"}));
  if (coupon.discount_type == "percentage") {
    GATEWAY_ASSIGN_OR_RETURN(coupon.percentage,
                             fields.RequiredAmount("percentage"));
    GATEWAY_ASSIGN_OR_RETURN(const Decimal percentage,
                             Decimal::Parse(coupon.percentage));
    GATEWAY_ASSIGN_OR_RETURN(const Decimal hundred, Decimal::Parse("100"));
    if (hundred < percentage) {
      return absl::InvalidArgumentError("percentage must be at most 100");
    }
  } else {
    GATEWAY_ASSIGN_OR_RETURN(coupon.fixed_amounts,
                             ReadAmountMap(fields, "fixedAmounts"));
    if (coupon.fixed_amounts.empty()) {
      return absl::InvalidArgumentError(
          "fixedAmounts is required for a fixed_amount coupon");
    }
  }
  GATEWAY_ASSIGN_OR_RETURN(coupon.apply_type,
                           fields.RequiredString("applyType"));
  GATEWAY_RETURN_IF_ERROR(ValidateEnum("applyType", coupon.apply_type,
                                       {"none", "product", "price"}));
  GATEWAY_ASSIGN_OR_RETURN(coupon.applicable_products,
                           ReadStringArray(fields, "applicableProducts"));
  if (coupon.apply_type == "product" && coupon.applicable_products.empty()) {
    return absl::InvalidArgumentError(
        "applicableProducts is required when applyType is product");
  }
  if (coupon.apply_type == "price" &&
      fields.Find("applicablePrices") == nullptr) {
    return absl::InvalidArgumentError(
        "applicablePrices is required when applyType is price");
  }
  GATEWAY_ASSIGN_OR_RETURN(coupon.duration_type,
                           fields.RequiredString("durationType"));
  GATEWAY_RETURN_IF_ERROR(ValidateEnum("durationType", coupon.duration_type,
                                       {"once", "repeating", "forever"}));
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> months,
                           fields.OptionalInt("durationMonths"));
  if (coupon.duration_type == "repeating" &&
      (!months.has_value() || *months < 1)) {
    return absl::InvalidArgumentError(
        "durationMonths must be at least 1 for a repeating coupon");
  }
  coupon.duration_months = coupon.duration_type == "repeating" ? *months : 0;
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> max_redemptions,
                           fields.OptionalInt("maxRedemptionCount"));
  if (max_redemptions.has_value() && *max_redemptions < 1) {
    return absl::InvalidArgumentError("maxRedemptionCount must be at least 1");
  }
  coupon.max_redemption_count = max_redemptions.value_or(0);
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> start,
                           fields.OptionalInt("validPeriodStart"));
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> end,
                           fields.OptionalInt("validPeriodEnd"));
  coupon.valid_period_start_ms = start.value_or(0);
  coupon.valid_period_end_ms = end.value_or(0);
  if (end.has_value() && *end <= coupon.valid_period_start_ms) {
    return absl::InvalidArgumentError(
        "validPeriodEnd must be after validPeriodStart");
  }
  std::vector<PromotionCode> codes;
  const rapidjson::Value* specs = fields.Find("promotionCodes");
  if (specs != nullptr && !specs->IsArray()) {
    return absl::InvalidArgumentError("promotionCodes must be an array");
  }
  for (rapidjson::SizeType i = 0; specs != nullptr && i < specs->Size(); ++i) {
    const std::string prefix = absl::StrCat("promotionCodes[", i, "].");
    if (!(*specs)[i].IsObject()) {
      return absl::InvalidArgumentError(prefix + " must be an object");
    }
    GATEWAY_ASSIGN_OR_RETURN(
        PromotionCode code,
        ReadPromotionCodeSpec(JsonFields((*specs)[i], prefix)));
    codes.push_back(std::move(code));
  }

  absl::MutexLock lock(&mu_);
  for (const std::string& product : coupon.applicable_products) {
    if (state_->FindProduct(product) == nullptr) {
      return NotFound("product", product);
    }
  }
  const int64_t now_ms = Millis(options_.clock());
  coupon.id = state_->NewId("coupon_");
  coupon.create_time_ms = now_ms;
  if (coupon.valid_period_start_ms == 0) coupon.valid_period_start_ms = now_ms;
  // Check every code before storing any, so a rejected request changes
  // nothing.
  std::set<std::string> new_codes;
  for (PromotionCode& code : codes) {
    if (code.code.empty()) {
      code.code = absl::AsciiStrToUpper(state_->NewId("")).substr(0, 10);
    }
    if (!new_codes.insert(code.code).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("promotion code ", code.code, " already exists"));
    }
    for (const auto& [id, existing] : state_->promotion_codes) {
      if (existing.code == code.code) {
        return absl::InvalidArgumentError(
            absl::StrCat("promotion code ", code.code, " already exists"));
      }
    }
  }
  for (PromotionCode& code : codes) {
    code.id = state_->NewId("promo_");
    code.coupon_id = coupon.id;
    code.status = "active";
    code.create_time_ms = now_ms;
    coupon.promotion_code_ids.push_back(code.id);
    Store(state_->promotion_codes, std::move(code));
  }
  state_->coupon_ids.push_back(coupon.id);
  const Coupon& stored = Store(state_->coupons, std::move(coupon));
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteCouponInfo(writer, stored); });
}

absl::StatusOr<std::string> MerchantApi::GetCoupon(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Coupon* coupon = State::Find(state_->coupons, params[0]);
  if (coupon == nullptr) return NotFound("coupon", params[0]);
  const int64_t now_ms = Millis(options_.clock());
  const bool valid = now_ms >= coupon->valid_period_start_ms &&
                     (coupon->valid_period_end_ms == 0 ||
                      now_ms < coupon->valid_period_end_ms);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteCouponInfo(writer, *coupon);
    WriteInt(writer, "createTime", coupon->create_time_ms);
    WriteBool(writer, "valid", valid);
    WriteString(writer, "applyType", coupon->apply_type);
    if (!coupon->applicable_products.empty()) {
      WriteKey(writer, "applicableProducts");
      writer.StartArray();
      for (const std::string& product : coupon->applicable_products) {
        writer.String(product.data(),
                      static_cast<rapidjson::SizeType>(product.size()));
      }
      writer.EndArray();
    }
    WriteKey(writer, "promotionCodeList");
    writer.StartArray();
    for (const std::string& id : coupon->promotion_code_ids) {
      writer.StartObject();
      WritePromotionCodeInfo(writer, state_->promotion_codes.at(id));
      writer.EndObject();
    }
    writer.EndArray();
    if (!coupon->fixed_amounts.empty()) {
      WriteString(writer, "currency", coupon->fixed_amounts[0].first);
      WriteAmount(writer, "amount", coupon->fixed_amounts[0].second);
    }
  });
}

absl::StatusOr<std::string> MerchantApi::RenameCoupon(const ApiRequest& request,
                                                      const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::string name, fields.RequiredString("newName"));
  if (name.size() > kNameMaxLength) {
    return absl::InvalidArgumentError("newName must be at most 255 characters");
  }
  absl::MutexLock lock(&mu_);
  Coupon* coupon = State::Find(state_->coupons, params[0]);
  if (coupon == nullptr) return NotFound("coupon", params[0]);
  coupon->name = std::move(name);
  return std::string(kVoidSuccess);
}

absl::StatusOr<std::string> MerchantApi::ListPromotionCodes(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const Coupon* coupon = State::Find(state_->coupons, params[0]);
  if (coupon == nullptr) return NotFound("coupon", params[0]);
  return DataArrayEnvelope([&](JsonWriter& writer) {
    for (const std::string& id : coupon->promotion_code_ids) {
      writer.StartObject();
      WritePromotionCodeInfo(writer, state_->promotion_codes.at(id));
      writer.EndObject();
    }
  });
}

absl::StatusOr<std::string> MerchantApi::CreatePromotionCode(
    const ApiRequest& request, const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  GATEWAY_ASSIGN_OR_RETURN(PromotionCode code,
                           ReadPromotionCodeSpec(JsonFields(doc)));
  absl::MutexLock lock(&mu_);
  // The path parameter is the coupon's id (clink-api.md §10.9).
  Coupon* coupon = State::Find(state_->coupons, params[0]);
  if (coupon == nullptr) return NotFound("coupon", params[0]);
  for (const std::string& customer : code.restricted_customer_ids) {
    if (State::Find(state_->customers, customer) == nullptr) {
      return NotFound("customer", customer);
    }
  }
  if (code.code.empty()) {
    code.code = absl::AsciiStrToUpper(state_->NewId("")).substr(0, 10);
  }
  for (const auto& [id, existing] : state_->promotion_codes) {
    if (existing.code == code.code) {
      return absl::InvalidArgumentError(
          absl::StrCat("promotion code ", code.code, " already exists"));
    }
  }
  code.id = state_->NewId("promo_");
  code.coupon_id = coupon->id;
  code.status = "active";
  code.create_time_ms = Millis(options_.clock());
  coupon->promotion_code_ids.push_back(code.id);
  const PromotionCode& stored = Store(state_->promotion_codes, std::move(code));
  return DataEnvelope(
      [&](JsonWriter& writer) { WritePromotionCodeInfo(writer, stored); });
}

absl::StatusOr<std::string> MerchantApi::GetPromotionCode(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const PromotionCode* code = State::Find(state_->promotion_codes, params[0]);
  if (code == nullptr) return NotFound("promotion code", params[0]);
  return DataEnvelope([&](JsonWriter& writer) {
    WritePromotionCodeInfo(writer, *code);
    if (!code->restricted_customer_ids.empty()) {
      WriteKey(writer, "customers");
      writer.StartArray();
      for (const std::string& id : code->restricted_customer_ids) {
        const Customer& customer = state_->customers.at(id);
        writer.StartObject();
        WriteString(writer, "customerId", customer.id);
        WriteStringIfSet(writer, "name", customer.name);
        WriteStringIfSet(writer, "email", customer.email);
        writer.EndObject();
      }
      writer.EndArray();
    }
    if (code->per_customer_redemption_limit != 0) {
      WriteInt(writer, "perCustomerRedemptionLimit",
               code->per_customer_redemption_limit);
    }
    if (!code->minimum_spend.empty()) {
      WriteAmountMap(writer, "minimumSpend", code->minimum_spend);
      WriteString(writer, "currency", code->minimum_spend[0].first);
      WriteAmount(writer, "amount", code->minimum_spend[0].second);
    }
  });
}

absl::StatusOr<std::string> MerchantApi::SetPromotionCodeStatus(
    const std::string& id, absl::string_view status) {
  absl::MutexLock lock(&mu_);
  PromotionCode* code = State::Find(state_->promotion_codes, id);
  if (code == nullptr) return NotFound("promotion code", id);
  if (code->status == "archived") {
    return InvalidState(absl::StrCat("promotion code ", id, " is archived"));
  }
  code->status = std::string(status);
  return std::string(kVoidSuccess);
}

absl::StatusOr<std::string> MerchantApi::ActivatePromotionCode(
    const ApiRequest& /*request*/, const Params& params) {
  return SetPromotionCodeStatus(params[0], "active");
}

absl::StatusOr<std::string> MerchantApi::DeactivatePromotionCode(
    const ApiRequest& /*request*/, const Params& params) {
  return SetPromotionCodeStatus(params[0], "inactive");
}

// ---------------------------------------------------------------------------------------------
// Test clocks.

absl::StatusOr<std::string> MerchantApi::ListTestClocks(
    const ApiRequest& /*request*/, const Params& /*params*/) {
  absl::MutexLock lock(&mu_);
  return DataArrayEnvelope([&](JsonWriter& writer) {
    for (const std::string& id : state_->test_clock_ids) {
      writer.StartObject();
      WriteTestClock(writer, state_->test_clocks.at(id));
      writer.EndObject();
    }
  });
}

absl::StatusOr<std::string> MerchantApi::CreateTestClock(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  TestClock clock;
  GATEWAY_ASSIGN_OR_RETURN(clock.name, fields.RequiredString("name"));
  if (clock.name.size() > kNameMaxLength) {
    return absl::InvalidArgumentError("name must be at most 255 characters");
  }
  GATEWAY_ASSIGN_OR_RETURN(clock.subscription_id,
                           fields.RequiredString("subscriptionId"));
  GATEWAY_ASSIGN_OR_RETURN(clock.metadata, fields.OptionalString("metadata"));
  if (!clock.metadata.empty()) {
    rapidjson::Document metadata;
    if (!ParseJsonObject(clock.metadata, &metadata).ok()) {
      return absl::InvalidArgumentError(
          "metadata must be a JSON object encoded as a string");
    }
  }
  absl::MutexLock lock(&mu_);
  if (State::Find(state_->subscriptions, clock.subscription_id) == nullptr) {
    return NotFound("subscription", clock.subscription_id);
  }
  for (const auto& [id, existing] : state_->test_clocks) {
    if (existing.subscription_id == clock.subscription_id &&
        existing.status != "COMPLETED") {
      return InvalidState(absl::StrCat("subscription ", clock.subscription_id,
                                       " already has test clock ", id));
    }
  }
  const int64_t now_ms = Millis(options_.clock());
  clock.id = state_->NewId("clock_");
  clock.status = "READY";
  clock.frozen_time_ms = now_ms;
  clock.create_time_ms = now_ms;
  clock.update_time_ms = now_ms;
  state_->test_clock_ids.push_back(clock.id);
  const TestClock& stored = Store(state_->test_clocks, std::move(clock));
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteTestClock(writer, stored); });
}

absl::StatusOr<std::string> MerchantApi::GetTestClock(
    const ApiRequest& /*request*/, const Params& params) {
  absl::MutexLock lock(&mu_);
  const TestClock* clock = State::Find(state_->test_clocks, params[0]);
  if (clock == nullptr) return NotFound("test clock", params[0]);
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteTestClock(writer, *clock); });
}

absl::StatusOr<std::string> MerchantApi::AdvanceTestClock(
    const ApiRequest& request, const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> target,
                           fields.OptionalInt("targetFrozenTime"));
  if (!target.has_value()) {
    return absl::InvalidArgumentError("targetFrozenTime is required");
  }
  absl::MutexLock lock(&mu_);
  TestClock* clock = State::Find(state_->test_clocks, params[0]);
  if (clock == nullptr) return NotFound("test clock", params[0]);
  if (clock->status == "COMPLETED") {
    return InvalidState(
        absl::StrCat("test clock ", clock->id, " is completed"));
  }
  if (*target <= clock->frozen_time_ms) {
    return absl::InvalidArgumentError(
        "targetFrozenTime must be after the clock's frozenTime");
  }
  Subscription& subscription = state_->subscriptions.at(clock->subscription_id);
  const Price& price = *state_->FindPrice(subscription.price_id);
  const Product& product = *state_->FindProduct(subscription.product_id);
  // Every period end up to the target, in order: a renewal, or the end of a
  // subscription that cancels at period end.
  int renewals = 0;
  int64_t events = 0;
  int64_t last_event_time_ms = 0;
  const bool renews =
      subscription.status == "active" || subscription.status == "free_trial";
  while (renews && subscription.status != "cancelled" &&
         subscription.status != "past_due" &&
         subscription.period_end_ms <= *target) {
    const absl::Time period_end =
        absl::FromUnixMillis(subscription.period_end_ms);
    ++events;
    last_event_time_ms = subscription.period_end_ms;
    if (subscription.cancel_at_period_end) {
      subscription.status = "cancelled";
      EmitSubscription("subscription.cancelled", subscription.id);
      break;
    }
    Invoice invoice;
    invoice.id = state_->NewId("inv_");
    invoice.subscription_id = subscription.id;
    invoice.customer_id = subscription.customer_id;
    invoice.create_time_ms = subscription.period_end_ms;
    Order order;
    order.id = state_->NewId("ord_");
    order.type = "recurring";
    order.merchant_reference_id = subscription.merchant_reference;
    order.invoice_id = invoice.id;
    order.subscription_id = subscription.id;
    order.customer_id = subscription.customer_id;
    order.customer_email = state_->customers.at(subscription.customer_id).email;
    order.product_id = product.id;
    order.price_id = price.id;
    order.amount = price.unit_amount;
    order.currency = price.currency;
    order.metadata = subscription.metadata;
    order.session_id = subscription.session_id;
    const int status = state_->Charge(
        state_->instruments.at(subscription.payment_instrument_id), period_end,
        &order);
    invoice.order_id = order.id;
    invoice.status = status == 1 ? "paid" : "open";
    subscription.period_start_ms = subscription.period_end_ms;
    subscription.period_end_ms = Millis(AddInterval(period_end, price));
    ++subscription.elapsed_cycles;
    ++renewals;
    if (status != 1) subscription.status = "past_due";
    state_->order_ids.push_back(order.id);
    const std::string order_id = Store(state_->orders, std::move(order)).id;
    const std::string invoice_id =
        Store(state_->invoices, std::move(invoice)).id;
    EmitOrderEvents(order_id);
    EmitInvoice(status == 1 ? "invoice.paid" : "invoice.open", invoice_id);
    EmitSubscription(
        status == 1 ? "subscription.updated.renewed" : "subscription.past_due",
        subscription.id);
  }
  const int64_t now_ms = Millis(options_.clock());
  const int64_t from_ms = clock->frozen_time_ms;
  clock->frozen_time_ms = *target;
  clock->last_advanced_to_ms = *target;
  clock->event_count += events;
  clock->update_time_ms = now_ms;
  const std::string task_id = state_->NewId("task_");
  const std::string last_event_id =
      events == 0 ? std::string() : state_->NewId("event_");
  const std::string summary =
      subscription.status == "cancelled" && events > renewals
          ? absl::StrCat(renewals, renewals == 1 ? " renewal" : " renewals",
                         ", cancelled at period end")
          : absl::StrCat(renewals, renewals == 1 ? " renewal" : " renewals");
  return DataEnvelope([&](JsonWriter& writer) {
    WriteString(writer, "taskId", task_id);
    WriteString(writer, "clockId", clock->id);
    WriteString(writer, "subscriptionId", clock->subscription_id);
    WriteInt(writer, "fromTime", from_ms);
    WriteInt(writer, "toTime", *target);
    WriteString(writer, "status", "SUCCEEDED");
    if (events != 0) {
      WriteString(writer, "lastEventId", last_event_id);
      WriteInt(writer, "lastEventTime", last_event_time_ms);
    }
    WriteString(writer, "summary", summary);
    WriteInt(writer, "createTime", now_ms);
    WriteInt(writer, "updateTime", now_ms);
  });
}

absl::StatusOr<std::string> MerchantApi::CompleteTestClock(
    const ApiRequest& request, const Params& params) {
  std::string reason;
  if (!request.body.empty()) {
    rapidjson::Document doc;
    GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
    GATEWAY_ASSIGN_OR_RETURN(reason, JsonFields(doc).OptionalString("reason"));
  }
  if (reason.size() > kCancelReasonMaxLength) {
    return absl::InvalidArgumentError("reason must be at most 255 characters");
  }
  absl::MutexLock lock(&mu_);
  TestClock* clock = State::Find(state_->test_clocks, params[0]);
  if (clock == nullptr) return NotFound("test clock", params[0]);
  if (clock->status == "COMPLETED") {
    return InvalidState(
        absl::StrCat("test clock ", clock->id, " is already completed"));
  }
  clock->status = "COMPLETED";
  clock->update_time_ms = Millis(options_.clock());
  return DataEnvelope(
      [&](JsonWriter& writer) { WriteTestClock(writer, *clock); });
}

}  // namespace clink_gateway::emulator
