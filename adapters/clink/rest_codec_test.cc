#include "adapters/clink/rest_codec.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/substitute.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/checkout.pb.h"
#include "clink/gateway/v1/coupon.pb.h"
#include "clink/gateway/v1/webhook.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "clink/gateway/v1/test_clock.pb.h"
#include "common/errors/error_details.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "rapidjson/reader.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clink_gateway::clink {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptorProto;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;
using google::protobuf::TextFormat;
using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// -----------------------------------------------------------------------------
// Helpers: files, protos, JSON.

std::string ReadTestdata(const std::string& name) {
  const std::string relative = "adapters/clink/testdata/" + name;
  std::ifstream in(relative);
  if (!in) {
    if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
      in.open(absl::StrCat(srcdir, "/clink_gateway/", relative));
    }
  }
  if (!in) {
    ADD_FAILURE() << "cannot open testdata file " << relative;
    return "";
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The names of the files in testdata/ that end in `suffix`, sorted.
std::vector<std::string> TestdataFilesEndingIn(absl::string_view suffix) {
  std::string dir = "adapters/clink/testdata";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
      dir = absl::StrCat(srcdir, "/clink_gateway/", dir);
      d = opendir(dir.c_str());
    }
  }
  std::vector<std::string> names;
  if (d == nullptr) return names;
  while (const dirent* entry = readdir(d)) {
    if (absl::EndsWith(entry->d_name, suffix)) names.push_back(entry->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<Message> NewMessage(const Descriptor* type) {
  return std::unique_ptr<Message>(
      MessageFactory::generated_factory()->GetPrototype(type)->New());
}

std::unique_ptr<Message> FromText(const Descriptor* type,
                                  const std::string& text) {
  std::unique_ptr<Message> message = NewMessage(type);
  if (!TextFormat::ParseFromString(text, message.get())) {
    ADD_FAILURE() << "bad text proto for " << type->full_name() << ":\n"
                  << text;
  }
  return message;
}

template <typename T>
T FromText(const std::string& text) {
  T message;
  if (!TextFormat::ParseFromString(text, &message)) {
    ADD_FAILURE() << "bad text proto for " << T::descriptor()->full_name()
                  << ":\n"
                  << text;
  }
  return message;
}

::testing::AssertionResult ProtoEquals(const Message& want,
                                       const Message& got) {
  MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(want, got)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "differences (want -> got):\n"
         << diff << "got: " << got.ShortDebugString();
}

// A JSON value that remembers whether a scalar was a number or a string, and
// each number's exact text: what the codec's money guarantees are about.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  std::string text;  // kBool: "true"/"false"; kNumber: the digits; kString.
  std::vector<std::string>
      keys;                  // kObject, in document order (duplicates kept).
  std::vector<Json> values;  // kObject member values, or kArray items.

  // The member named `key` of an object, or nullptr.
  const Json* Find(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class JsonTreeBuilder
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, JsonTreeBuilder> {
 public:
  bool Null() { return Add(Json{}); }
  bool Bool(bool b) { return Add(Scalar(Json::kBool, b ? "true" : "false")); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    return Add(Scalar(Json::kNumber, std::string(s, n)));
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return Add(Scalar(Json::kString, std::string(s, n)));
  }
  bool StartObject() { return Open(Json::kObject); }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    stack_.back().keys.emplace_back(s, n);
    return true;
  }
  bool EndObject(rapidjson::SizeType) { return Close(); }
  bool StartArray() { return Open(Json::kArray); }
  bool EndArray(rapidjson::SizeType) { return Close(); }

  Json root;

 private:
  static Json Scalar(Json::Kind kind, std::string text) {
    Json j;
    j.kind = kind;
    j.text = std::move(text);
    return j;
  }
  bool Open(Json::Kind kind) {
    stack_.emplace_back();
    stack_.back().kind = kind;
    return true;
  }
  bool Close() {
    Json done = std::move(stack_.back());
    stack_.pop_back();
    return Add(std::move(done));
  }
  bool Add(Json value) {
    if (stack_.empty()) {
      root = std::move(value);
    } else {
      stack_.back().values.push_back(std::move(value));
    }
    return true;
  }
  std::vector<Json> stack_;
};

bool ParseJson(const std::string& text, Json* out) {
  JsonTreeBuilder builder;
  rapidjson::Reader reader;
  rapidjson::StringStream stream(text.c_str());
  if (reader
          .Parse<rapidjson::kParseNumbersAsStringsFlag |
                 rapidjson::kParseValidateEncodingFlag>(stream, builder)
          .IsError()) {
    return false;
  }
  *out = std::move(builder.root);
  return true;
}

std::string Quote(const std::string& s) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return buffer.GetString();
}

// Object members sorted by key (JSON objects are unordered); everything else as
// written, numbers by their exact text and distinct from strings.
std::string Canonical(const Json& j) {
  switch (j.kind) {
    case Json::kNull:
      return "null";
    case Json::kBool:
    case Json::kNumber:
      return j.text;
    case Json::kString:
      return Quote(j.text);
    case Json::kArray: {
      std::vector<std::string> items;
      for (const Json& item : j.values) items.push_back(Canonical(item));
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    case Json::kObject: {
      std::vector<size_t> order(j.keys.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&j](size_t a, size_t b) {
        return j.keys[a] < j.keys[b];
      });
      std::vector<std::string> members;
      for (size_t i : order) {
        members.push_back(
            absl::StrCat(Quote(j.keys[i]), ":", Canonical(j.values[i])));
      }
      return absl::StrCat("{", absl::StrJoin(members, ","), "}");
    }
  }
  return "?";
}

std::string CanonicalJson(const std::string& text) {
  Json j;
  if (!ParseJson(text, &j)) return absl::StrCat("<not JSON> ", text);
  return Canonical(j);
}

std::vector<std::string> ViolationFields(const absl::Status& status) {
  const absl::optional<google::rpc::BadRequest> bad_request =
      errors::GetBadRequest(status);
  if (!bad_request.has_value()) return {"<no BadRequest payload>"};
  std::vector<std::string> fields;
  for (const auto& violation : bad_request->field_violations()) {
    fields.push_back(violation.field());
  }
  return fields;
}

// -----------------------------------------------------------------------------
// The codec under test, built from the contract exactly as the server builds
// it.

std::vector<const ServiceDescriptor*> GatewayServices() {
  std::vector<const ServiceDescriptor*> services;
  for (const std::string& name : GatewayServiceNames()) {
    services.push_back(
        DescriptorPool::generated_pool()->FindServiceByName(name));
  }
  return services;
}

// How many RPCs the contract declares (no hard-coded count: a new RPC needs
// only its proto and golden files).
size_t ContractRpcCount() {
  size_t n = 0;
  for (const ServiceDescriptor* s : GatewayServices()) n += s->method_count();
  return n;
}

const RestCodec& Codec() {
  static const RestCodec* const codec = [] {
    absl::StatusOr<std::unique_ptr<RestCodec>> created =
        RestCodec::Create(GatewayServices());
    if (!created.ok()) {
      fprintf(stderr, "RestCodec::Create failed on the contract: %s\n",
              created.status().ToString().c_str());
      std::abort();
    }
    return created->release();
  }();
  return *codec;
}

const MethodDescriptor* FindRpc(const std::string& rpc) {
  return DescriptorPool::generated_pool()->FindMethodByName(
      "clink.gateway.v1." + rpc);
}

// The compiled mapping of "Service.Method"; nullptr (and a test failure) when
// missing.
const RestMethod* Rest(const std::string& rpc) {
  const MethodDescriptor* method = FindRpc(rpc);
  if (method == nullptr) {
    ADD_FAILURE() << "no RPC " << rpc;
    return nullptr;
  }
  const RestMethod* rest = Codec().Find(*method);
  if (rest == nullptr) ADD_FAILURE() << "codec has no mapping for " << rpc;
  return rest;
}

struct Decoded {
  absl::Status status;
  std::unique_ptr<Message> response;
  Envelope envelope;
  DecodeStats stats;
};

Decoded Decode(const std::string& rpc, const std::string& body) {
  Decoded out;
  const RestMethod* rest = Rest(rpc);
  if (rest == nullptr) {
    out.status = absl::NotFoundError(rpc);
    return out;
  }
  out.response = NewMessage(rest->method->output_type());
  out.status = Codec().DecodeResponse(*rest, body, out.response.get(),
                                      &out.envelope, &out.stats);
  return out;
}

std::string Ok(const std::string& data) {
  return absl::StrCat(R"({"code":200,"msg":"success","data":)", data, "}");
}

// -----------------------------------------------------------------------------
// Realistic requests, shared by the per-RPC table and the validation tests.

constexpr char kCreateCheckoutSessionRequest[] = R"pb(
  customer_id: "cus_12345"
  customer_email: "alice@example.com"
  original_amount: "19.99"
  original_currency: "USD"
  merchant_reference_id: "order_ref_123"
  ui_mode: UI_MODE_HOSTED_PAGE
  success_url: "https://merchant.example.com/checkout/success?cart=42"
  cancel_url: "https://merchant.example.com/checkout/cancel"
  payment_method_type: PAYMENT_METHOD_TYPE_CASHAPP
  payment_method_type_black_list: [
    PAYMENT_METHOD_TYPE_WECHAT,
    PAYMENT_METHOD_TYPE_KAKAO
  ]
  direct_payment_qr_code_payment_method_type: PAYMENT_METHOD_TYPE_CASHAPP
  price_data_list {
    name: "Pro Plan (monthly)"
    quantity: 1
    unit_amount: "9.99"
    currency: "USD"
    image_url: "https://cdn.example.com/img/pro.png"
  }
  price_data_list {
    name: "Setup fee"
    quantity: 2
    unit_amount: "5.00"
    currency: "USD"
  }
  allow_promotion_codes: true
  promotion_code: "WELCOME10"
)pb";

constexpr char kCreatePaymentRequest[] = R"pb(
  customer_id: "cus_xxxxx"
  payment_instrument_id: "pi_xxxxx"
  payment_method_type: PAYMENT_METHOD_TYPE_CARD
  price_data_list {
    name: "Annual report"
    quantity: 1
    unit_amount: "49.90"
    currency: "USD"
  }
  amount: "49.90"
  currency: "USD"
  merchant_reference_id: "pay_ref_123"
  return_url: "https://merchant.example.com/payment/return"
  metadata { key: "source" value: "checkout" }
  metadata { key: "cartId" value: "c_42" }
  platform_type: PLATFORM_TYPE_WEB
  device_type: DEVICE_TYPE_ANDROID
)pb";

constexpr char kCreateRefundRequest[] = R"pb(
  order_id: "ord_4t6y8u"
  refund_merchant_order_id: "refund_ref_001"
  refund_amount: "5.00"
  refund_reason_type: REFUND_REASON_TYPE_CUSTOMER_INITIATED
  remark: "Customer returned the setup kit"
)pb";

constexpr char kCreateAgentPaymentSessionRequest[] = R"pb(
  customer_email: "agent.buyer@example.com"
  amount: "25.00"
  currency: "USD"
)pb";

constexpr char kCreateSubscriptionRequest[] = R"pb(
  customer_id: "cus_12345"
  merchant_reference_id: "sub_ref_2025_08"
  price_id: "price_monthly_pro"
  product_id: "prd_pro"
  payment_instrument_id: "pi_card_5521"
  payment_method_type: PAYMENT_METHOD_TYPE_CARD
  payment_currency: "USD"
  promotion_code: "SUMMER25"
  return_url: "https://merchant.example.com/subscription/return"
  metadata { key: "plan" value: "pro" }
  platform_type: PLATFORM_TYPE_WAP
  device_type: DEVICE_TYPE_IOS
  scheduled_phases {
    sequence: 1
    effective_cycle: 3
    price_snapshot_id: "ps_pro_annual_v2"
    quantity: 5
    metadata { key: "reason" value: "seat expansion" }
  }
  scheduled_phases {
    sequence: 2
    effective_cycle: 6
    price_snapshot_id: "ps_pro_annual_v3"
    quantity: 10
  }
)pb";

constexpr char kCancelSubscriptionRequest[] = R"pb(
  subscription_id: "sub_7x1k2m"
  reason: "Too expensive for our team"
  cancel_reason_code: CANCEL_REASON_CODE_TOO_EXPENSIVE
  cancel_immediately: true
)pb";

// Expected decodings shared by more than one row or test.

constexpr char kSubscriptionActive[] = R"pb(
  merchant_reference: "sub_ref_2025_08"
  subscription_id: "sub_7x1k2m"
  customer_id: "cus_12345"
  product_id: "prd_pro"
  price_id: "price_monthly_pro"
  price_snapshot_id: "ps_pro_monthly_v1"
  create_time { seconds: 1754006400 }
  quantity: 1
  payment_method_type: "CARD"
  payment_instrument_id: "pi_card_5521"
  trial_start { seconds: 1754006400 }
  trial_end { seconds: 1754611200 }
  current_period_start { seconds: 1754611200 }
  current_period_end { seconds: 1757289600 }
  status: SUBSCRIPTION_STATUS_ACTIVE
  billing: BILLING_METHOD_CHARGE_AUTOMATICALLY
  currency: "USD"
  recurring_invoice_item {
    invoice_item_id: "ii_001"
    amount: "29.99"
    currency: "USD"
    description: "1 × Pro Plan (at $29.99 / month)"
    period_start { seconds: 1754611200 }
    period_end { seconds: 1757289600 }
    price {
      product_id: "prd_pro"
      product_name: "Pro Plan"
      price_id: "price_monthly_pro"
      price_snapshot_id: "ps_pro_monthly_v1"
      unit_amount: "29.99"
      quantity: 1
      recurring {
        interval: RECURRING_INTERVAL_MONTH
        trial_period_days: 7
        pricing_model: PRICING_MODEL_FLAT_RATE
        interval_count: 1
      }
    }
  }
  upcoming_invoice_item {
    invoice_item_id: "ii_002"
    amount: "149.95"
    currency: "USD"
    description: "5 × Pro Plan (at $29.99 / month)"
    period_start { seconds: 1762560000 }
    period_end { seconds: 1765152000 }
    price {
      product_id: "prd_pro"
      product_name: "Pro Plan"
      price_id: "price_monthly_pro"
      price_snapshot_id: "ps_pro_annual_v2"
      unit_amount: "29.99"
      quantity: 5
      recurring {
        interval: RECURRING_INTERVAL_MONTH
        pricing_model: PRICING_MODEL_PER_SEAT
        interval_count: 1
      }
    }
  }
  scheduled_phases {
    sequence: 1
    effective_cycle: 3
    price_snapshot_id: "ps_pro_annual_v2"
    quantity: 5
    metadata { key: "reason" value: "seat expansion" }
  }
  elapsed_cycles: 1
  metadata { key: "plan" value: "pro" }
)pb";

constexpr char kProductPro[] = R"pb(
  product_id: "prd_pro"
  name: "Pro Plan"
  active: true
  description: "Everything in Basic, plus team seats."
  default_price: "price_monthly_pro"
  image: "https://cdn.example.com/img/pro.png"
  tax_category: TAX_CATEGORY_SOFTWARE_SERVICE
  price_list {
    price_id: "price_monthly_pro"
    price_snapshot_id: "ps_pro_monthly_v1"
    product_id: "prd_pro"
    currency: "USD"
    unit_amount: "29.99"
    price_type: PRICE_TYPE_RECURRING
    recurring {
      interval: RECURRING_INTERVAL_MONTH
      trial_period_days: 7
      pricing_model: PRICING_MODEL_FLAT_RATE
      interval_count: 1
    }
    active: true
    create_time { seconds: 1751328000 }
  }
  price_list {
    price_id: "price_setup_pro"
    product_id: "prd_pro"
    currency: "EUR"
    unit_amount: "680"
    price_type: PRICE_TYPE_ONE_TIME
    active: true
    create_time { seconds: 1751328000 nanos: 500000000 }
  }
  create_time { seconds: 1751328000 }
  update_time { seconds: 1754006400 nanos: 123000000 }
  localized_names { key: "en-US" value: "Pro Plan" }
  localized_names { key: "zh-CN" value: "专业版" }
)pb";

// A refund response; $0 is its status (created by CreateRefund, success by
// GetRefund).
constexpr char kRefundWithStatus[] = R"pb(
  refund {
    create_time { seconds: 1754906111 }
    refund_id: "rfd_abc123xyz"
    order_id: "ord_4t6y8u"
    customer_id: "cus_12345"
    refund_amount: "5.00"
    refund_currency: "USD"
    refund_reason: REFUND_REASON_CUSTOMER_INITIATED
    metadata { key: "arn" value: "8377252556170253" }
    metadata { key: "merchantReferenceId" value: "sample_id" }
    payment_instrument_id: "pi_card_5521"
    status: $0
  }
)pb";

// -----------------------------------------------------------------------------
// 1. Every RPC, both ways.

struct RpcCase {
  const char* rpc;     // "Service.Method" in package clink.gateway.v1.
  const char* golden;  // testdata/<golden>_request.json (non-GET) and
                       // <golden>_response.json.
  std::string request;
  http::Method http_method;
  const char* path_and_query;
  std::string response;  // The expected decoding of the response golden.
};

std::vector<RpcCase> CasesFromFiles();

const std::vector<RpcCase>& RpcCases() {
  static auto* const cases = new std::vector<RpcCase>{
      {"CheckoutService.CreateCheckoutSession", "create_checkout_session",
       kCreateCheckoutSessionRequest, http::Method::kPost, "/checkout/session",
       R"pb(
         session_id: "sess_abc123xyz"
         token_value: "tok_5f2c9a7e41d8"
         customer_id: "cus_12345"
         original_amount: "19.99"
         original_currency: "USD"
         ui_mode: UI_MODE_HOSTED_PAGE
         url: "https://uat-checkout.clinkbill.com/pay/sess_abc123xyz"
         merchant_reference_id: "order_ref_123"
         expire_time { seconds: 1699335116 }
       )pb"},
      {"CheckoutService.GetCheckoutSession", "get_checkout_session",
       R"pb(session_id: "sess_abc123xyz")pb", http::Method::kGet,
       "/checkout/session/sess_abc123xyz", R"pb(
         checkout_session {
           session_id: "sess_abc123xyz"
           token: "tok_5f2c9a7e41d8"
           status: CHECKOUT_SESSION_STATUS_COMPLETED
           payment_status: CHECKOUT_SESSION_PAYMENT_STATUS_PAID
           amount_subtotal: "19.99"
           amount_total: "17.99"
           original_currency: "USD"
           payment_currency: "SGD"
           subscription_id: "sub_7x1k2m"
           invoice_id: "inv_9q3w8e"
           order_id: "ord_4t6y8u"
           merchant_reference_id: "order_ref_123"
           locale: "en-US"
           ui_mode: UI_MODE_HOSTED_PAGE
           cancel_url: "https://merchant.example.com/checkout/cancel"
           success_url: "https://merchant.example.com/checkout/success?cart=42"
           created { seconds: 1754819711 nanos: 382000000 }
           expire { seconds: 1754823311 nanos: 382000000 }
           price {
             price_id: "price_monthly_pro"
             price_list { amount: "17.99" currency: "USD" exchange_rate: "1" }
             price_list {
               amount: "24.20"
               currency: "SGD"
               exchange_rate: "1.3456"
             }
             recurring { free_trial_days: 7 interval: RECURRING_INTERVAL_MONTH }
           }
           product { product_id: "prd_pro" product_name: "Pro Plan" }
           customer { customer_id: "cus_12345" email: "alice@example.com" }
         }
       )pb"},
      {"PaymentService.CreatePayment", "create_payment", kCreatePaymentRequest,
       http::Method::kPost, "/payment", R"pb(
         order_id: "ord_xxxxx"
         session_id: "sess_pay_81f2"
         status: PAYMENT_RESULT_STATUS_NEXT_ACTION
         action {
           redirect_url: "https://uat-checkout.clinkbill.com/3ds/challenge/ord_xxxxx"
           method: ACTION_METHOD_POST
           type: PAYMENT_METHOD_TYPE_CARD
           payment_method_type: "CARD"
           post_data { key: "creq" value: "eyJtZXNzYWdlVHlwZSI6IkNSZXEifQ" }
           post_data { key: "threeDSSessionData" value: "ord_xxxxx" }
         }
         amount: "49.90"
         currency: "USD"
       )pb"},
      {"PaymentService.RefreshPaymentQrCode", "refresh_payment_qr_code",
       R"pb(order_id: "ord_cashapp_77")pb", http::Method::kPost,
       "/payment/ord_cashapp_77/qrcode/refresh", R"pb(
         order_id: "ord_cashapp_77"
         action {
           redirect_url: "https://cash.app/pay/ord_cashapp_77"
           method: ACTION_METHOD_GET
           type: PAYMENT_METHOD_TYPE_CASHAPP
           wallet_handle_redirect_or_display_qr_code {
             image_url_png: "https://api.cash.app/qr/ord_cashapp_77.png"
             image_url_svg: "https://api.cash.app/qr/ord_cashapp_77.svg"
             image_data_url: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
             hosted_instructions_url: "https://uat-checkout.clinkbill.com/qr/ord_cashapp_77"
             mobile_auth_url: "cashme://cash.app/pay/ord_cashapp_77"
             fallback_url: "https://cash.app/pay/ord_cashapp_77"
             package_name: "com.squareup.cash"
             expires_at { seconds: 1754820011 }
             expires_second: 300
           }
           payment_method_type: "CASHAPP"
         }
       )pb"},
      {"PaymentService.CreatePaymentInstrument", "create_payment_instrument",
       R"pb(
         customer_id: "cus_xxxxx"
         customer_name: "Alice Example"
         payment_instrument_type: PAYMENT_METHOD_TYPE_CASHAPP
         metadata { key: "source" value: "checkout" }
       )pb",
       http::Method::kPost, "/payment-instrument", R"pb(
         payment_instrument {
           id: "pi_8c1d2e3f"
           customer_id: "cus_xxxxx"
           type: PAYMENT_METHOD_TYPE_CASHAPP
           wallet { account_tag: "$alice-example" }
           created { seconds: 1754819711 nanos: 382000000 }
         }
       )pb"},
      {"PaymentService.GetOrder", "get_order", R"pb(order_id: "ord_4t6y8u")pb",
       http::Method::kGet, "/order/ord_4t6y8u", R"pb(
         order {
           order_id: "ord_4t6y8u"
           type: ORDER_TYPE_ONETIME
           merchant_reference_id: "order_ref_123"
           customer_id: "cus_12345"
           customer_email: "alice@example.com"
           create_time { seconds: 1754819711 nanos: 382000000 }
           price_data_list {
             name: "Pro Plan (monthly)"
             quantity: 1
             unit_amount: "9.99"
             currency: "USD"
             image_url: "https://cdn.example.com/img/pro.png"
           }
           price_data_list {
             name: "Setup fee"
             quantity: 2
             unit_amount: "5.00"
             currency: "USD"
           }
           payment_method {
             payment_method_type: "CARD"
             payment_instrument_id: "pi_card_5521"
           }
           payment_execution_details {
             channel_code: "ADYEN"
             channel_transaction_id: "psp_991122"
             original_failure_code: "05"
             original_failure_message: "Do not honor"
           }
           payment_execution_details {
             channel_code: "CHECKOUT"
             channel_transaction_id: "pay_7bd3"
           }
           amount_subtotal: "19.99"
           amount_total: "19.99"
           payment_currency: "USD"
           original_currency: "USD"
           status: ORDER_STATUS_PARTIAL_REFUNDED
           payment_time { seconds: 1754819745 nanos: 120000000 }
           session_id: "sess_abc123xyz"
           metadata { key: "cartId" value: "c_42" }
           risk_level: "normal"
         }
       )pb"},
      {"PaymentService.ListOrders", "list_orders", R"pb(
         subscription_id: "sub_7x1k2m"
         customer_id: "cus_12345"
         page_num: 2
         page_size: 50
       )pb",
       http::Method::kGet,
       "/order?subscriptionId=sub_7x1k2m&customerId=cus_12345&pageNum=2&"
       "pageSize=50",
       R"pb(
         orders {
           order_id: "ord_sub_renew_02"
           type: ORDER_TYPE_RECURRING
           merchant_reference_id: "sub_ref_2025_08"
           invoice_id: "inv_2b4n6m"
           customer_id: "cus_12345"
           customer_email: "alice@example.com"
           create_time { seconds: 1757289600 }
           product_id: "prd_pro"
           price_id: "price_monthly_pro"
           payment_method {
             payment_method_type: "CARD"
             payment_instrument_id: "pi_card_5521"
           }
           payment_execution_details {
             channel_code: "ADYEN"
             channel_transaction_id: "psp_991200"
           }
           amount_subtotal: "100.00"
           amount_total: "100.00"
           payment_currency: "USD"
           original_currency: "USD"
           status: ORDER_STATUS_SUCCESS
           payment_time { seconds: 1757289603 nanos: 456000000 }
           risk_level: "low"
         }
         orders {
           order_id: "ord_sub_renew_03"
           type: ORDER_TYPE_RECURRING
           invoice_id: "inv_8h7g6f"
           customer_id: "cus_12345"
           create_time { seconds: 1757289700 nanos: 1000000 }
           product_id: "prd_pro"
           price_id: "price_metered"
           payment_method {
             payment_method_type: "CARD"
             payment_instrument_id: "pi_card_5521"
           }
           payment_execution_details {
             channel_code: "ADYEN"
             channel_transaction_id: "psp_991201"
             original_failure_code: "51"
             original_failure_message: "Insufficient funds"
           }
           amount_subtotal: "1.10"
           amount_total: "1.10"
           payment_currency: "USD"
           original_currency: "USD"
           status: ORDER_STATUS_FAILED
           payment_time { seconds: 1757289701 nanos: 999000000 }
         }
         total: 57
       )pb"},
      {"PaymentService.CreateRefund", "create_refund", kCreateRefundRequest,
       http::Method::kPost, "/refund",
       absl::Substitute(kRefundWithStatus, "REFUND_STATUS_CREATED")},
      {"PaymentService.GetRefund", "get_refund",
       R"pb(refund_id: "rfd_abc123xyz")pb", http::Method::kGet,
       "/refund/rfd_abc123xyz",
       absl::Substitute(kRefundWithStatus, "REFUND_STATUS_SUCCESS")},
      {"PaymentService.CreateAgentPaymentSession",
       "create_agent_payment_session", kCreateAgentPaymentSessionRequest,
       http::Method::kPost, "/order/payment-session",
       R"pb(session_id: "sess_agent_3k9d"
            expire_time { seconds: 1781688600 })pb"},
      {"PaymentService.GetAgentPaymentSession", "get_agent_payment_session",
       R"pb(session_id: "sess_agent_3k9d")pb", http::Method::kGet,
       "/order/payment-session/sess_agent_3k9d", R"pb(
         agent_payment_session {
           session_id: "sess_agent_3k9d"
           customer_email: "agent.buyer@example.com"
           customer_id: "cus_agent_77"
           amount: "25.00"
           currency: "USD"
           merchant_id: "mcht_frnagwqi4k43"
           tenant_id: "tenant_001"
           create_time { seconds: 1781685000 }
           expire_time { seconds: 1781688600 }
         }
       )pb"},
      {"BillingService.CreateCustomerPortalSession",
       "create_customer_portal_session",
       R"pb(customer_id: "cus_12345"
            return_url: "https://merchant.example.com/account")pb",
       http::Method::kPost, "/billing/session", R"pb(
         url: "https://uat-portal.clinkbill.com/session/eyJhbGciOiJIUzI1NiJ9.eyJjdXMiOiJjdXNfMTIzNDUifQ.c2ln"
         expires_at { seconds: 1754823311 nanos: 382000000 }
       )pb"},
      {"BillingService.CreateSubscription", "create_subscription",
       kCreateSubscriptionRequest, http::Method::kPost, "/subscription", R"pb(
         subscription_id: "sub_7x1k2m"
         session_id: "sess_sub_55aa"
         status: PAYMENT_RESULT_STATUS_SUCCESS
         amount: "29.99"
         currency: "USD"
         order_id: "ord_sub_first_01"
         invoice_id: "inv_9q3w8e"
       )pb"},
      {"BillingService.GetSubscription", "get_subscription",
       R"pb(subscription_id: "sub_7x1k2m")pb", http::Method::kGet,
       "/subscription/sub_7x1k2m",
       absl::StrCat("subscription {", kSubscriptionActive, "}")},
      {"BillingService.CancelSubscription", "cancel_subscription",
       kCancelSubscriptionRequest, http::Method::kPost,
       "/subscription/sub_7x1k2m/cancel", R"pb(
         subscription {
           merchant_reference: "sub_ref_2025_08"
           subscription_id: "sub_7x1k2m"
           customer_id: "cus_12345"
           product_id: "prd_pro"
           price_id: "price_monthly_pro"
           price_snapshot_id: "ps_pro_monthly_v1"
           create_time { seconds: 1754006400 }
           quantity: 1
           payment_method_type: "CARD"
           payment_instrument_id: "pi_card_5521"
           current_period_start { seconds: 1754611200 }
           current_period_end { seconds: 1757289600 }
           cancel_at { seconds: 1754906111 }
           canceled_at { seconds: 1754906111 }
           cancel_reason: "Too expensive for our team"
           status: SUBSCRIPTION_STATUS_CANCELLED
           billing: BILLING_METHOD_CHARGE_AUTOMATICALLY
           currency: "USD"
           elapsed_cycles: 1
           metadata { key: "plan" value: "pro" }
         }
       )pb"},
      {"BillingService.GetInvoice", "get_invoice",
       R"pb(invoice_id: "inv_9q3w8e")pb", http::Method::kGet,
       "/subscription/invoice/inv_9q3w8e", R"pb(
         invoice {
           invoice_id: "inv_9q3w8e"
           subscription_id: "sub_7x1k2m"
           order_id: "ord_sub_first_01"
           customer_id: "cus_12345"
           merchant_id: "mcht_frnagwqi4k43"
           status: INVOICE_STATUS_PAID
           create_time { seconds: 1754611200 }
           current_period_start { seconds: 1754611200 }
           current_period_end { seconds: 1757289600 }
           original_amount: "25.49"
           original_currency: "USD"
           billing: BILLING_METHOD_CHARGE_AUTOMATICALLY
           items {
             invoice_item_id: "ii_001"
             amount: "29.99"
             currency: "USD"
             description: "1 × Pro Plan (at $29.99 / month)"
             period_start { seconds: 1754611200 }
             period_end { seconds: 1757289600 }
             price {
               product_id: "prd_pro"
               product_name: "Pro Plan"
               price_id: "price_monthly_pro"
               price_snapshot_id: "ps_pro_monthly_v1"
               unit_amount: "29.99"
               quantity: 1
               recurring {
                 interval: RECURRING_INTERVAL_MONTH
                 trial_period_days: 7
                 pricing_model: PRICING_MODEL_FLAT_RATE
                 interval_count: 1
               }
             }
             discount_amount: "7.50"
             payment_amount: "22.49"
             coupon_terms: "25% off for 3 months"
             promotion_code: "SUMMER25"
           }
           items {
             invoice_item_id: "ii_003"
             amount: "-4.50"
             currency: "USD"
             description: "Unused time on Basic Plan"
             period_start { seconds: 1754611200 }
             period_end { seconds: 1757289600 }
             proration: true
             price {
               product_id: "prd_basic"
               product_name: "Basic Plan"
               price_id: "price_monthly_basic"
               price_snapshot_id: "ps_basic_monthly_v1"
               unit_amount: "9.00"
               quantity: 1
             }
             discount_amount: "0"
             payment_amount: "-4.50"
           }
           merchant_reference: "sub_ref_2025_08"
           payment_amount: "17.99"
           discount {
             coupon_id: "coupon_summer"
             coupon_name: "Summer sale"
             coupon_terms: "25% off for 3 months"
             promotion_code: "SUMMER25"
             discount_amount: "7.50"
           }
           metadata { key: "plan" value: "pro" }
         }
       )pb"},
      {"BillingService.ListProducts", "list_products", R"pb(page_num: 1
                                                            page_size: 20)pb",
       http::Method::kGet, "/product?pageNum=1&pageSize=20", R"pb(
         products {
           product_id: "prd_pro"
           name: "Pro Plan"
           active: true
           description: "Everything in Basic, plus team seats."
           default_price: "price_monthly_pro"
           image: "https://cdn.example.com/img/pro.png"
           tax_category: TAX_CATEGORY_SOFTWARE_SERVICE
           price_list {
             price_id: "price_monthly_pro"
             price_snapshot_id: "ps_pro_monthly_v1"
             product_id: "prd_pro"
             currency: "USD"
             unit_amount: "29.99"
             price_type: PRICE_TYPE_RECURRING
             recurring {
               interval: RECURRING_INTERVAL_MONTH
               trial_period_days: 7
               pricing_model: PRICING_MODEL_FLAT_RATE
               interval_count: 1
             }
             active: true
             create_time { seconds: 1751328000 }
           }
           create_time { seconds: 1751328000 }
           update_time { seconds: 1754006400 nanos: 123000000 }
           localized_names { key: "en-US" value: "Pro Plan" }
           localized_names { key: "zh-CN" value: "专业版" }
         }
         products {
           product_id: "prd_ebooks"
           name: "E-book bundle"
           image: "https://cdn.example.com/img/ebooks.png"
           tax_category: TAX_CATEGORY_EBOOK
           create_time { seconds: 1740787200 }
           update_time { seconds: 1740787200 }
         }
         total: 2
       )pb"},
      {"BillingService.GetProduct", "get_product",
       R"pb(product_id: "prd_pro")pb", http::Method::kGet, "/product/prd_pro",
       absl::StrCat("product {", kProductPro, "}")},
      {"BillingService.ListPrices", "list_prices",
       R"pb(
         product_id: "prd_pro" page_num: 1 page_size: 100 active: true
       )pb",
       http::Method::kGet,
       "/price?productId=prd_pro&pageNum=1&pageSize=100&active=true", R"pb(
         prices {
           price_id: "price_monthly_pro"
           price_snapshot_id: "ps_pro_monthly_v1"
           product_id: "prd_pro"
           currency: "USD"
           unit_amount: "29.99"
           price_type: PRICE_TYPE_RECURRING
           recurring {
             interval: RECURRING_INTERVAL_MONTH
             trial_period_days: 7
             pricing_model: PRICING_MODEL_FLAT_RATE
             interval_count: 1
           }
           active: true
           create_time { seconds: 1751328000 }
         }
         prices {
           price_id: "price_storage_pro"
           price_snapshot_id: "ps_storage_v4"
           product_id: "prd_pro"
           currency: "JPY"
           unit_amount: "1200"
           price_type: PRICE_TYPE_RECURRING
           recurring {
             interval: RECURRING_INTERVAL_CUSTOM
             pricing_model: PRICING_MODEL_PER_SEAT
             transform_quantity {
               divide_by: 1024
               round: TRANSFORM_QUANTITY_ROUND_UP
             }
             interval_count: 14
           }
           active: true
           create_time { seconds: 1751328000 nanos: 999000000 }
         }
         prices {
           price_id: "price_setup_pro"
           product_id: "prd_pro"
           currency: "EUR"
           unit_amount: "680"
           price_type: PRICE_TYPE_ONE_TIME
           active: true
           create_time { seconds: 1751328000 nanos: 500000000 }
         }
         total: 3
       )pb"},
      // The response golden spells `recurring`'s members in snake_case, like
      // Clink's GET-price docs example.
      {"BillingService.GetPrice", "get_price",
       R"pb(price_id: "price_storage_pro")pb", http::Method::kGet,
       "/price/price_storage_pro", R"pb(
         price {
           price_id: "price_storage_pro"
           price_snapshot_id: "ps_storage_v4"
           product_id: "prd_pro"
           currency: "USD"
           unit_amount: "12.345678"
           price_type: PRICE_TYPE_RECURRING
           recurring {
             interval: RECURRING_INTERVAL_QUARTER
             trial_period_days: 14
             pricing_model: PRICING_MODEL_PER_SEAT
             transform_quantity {
               divide_by: 1024
               round: TRANSFORM_QUANTITY_ROUND_HALF_UP
             }
             interval_count: 1
           }
           create_time { seconds: 1751328000 nanos: 999000000 }
         }
       )pb"},
      {"BillingService.UploadProductImage", "upload_product_image",
       R"pb(file: "GIF89a tiny test image" file_name: "pro-plan.gif")pb",
       http::Method::kPost, "/product/image/upload", R"pb(
         url: "https://cdn.clinkbill.com/oss/oss_7h2k9d.gif"
         file_name: "pro-plan.gif"
         oss_id: "oss_7h2k9d"
       )pb"},
      {"BillingService.CreateProduct", "create_product", R"pb(
         name: "Pro Plan"
         localized_names { key: "en-US" value: "Pro Plan" }
         localized_names { key: "zh-CN" value: "专业版" }
         description: "Everything in Starter, plus priority support"
         image: "oss_7h2k9d"
         tax_category: TAX_CATEGORY_SOFTWARE_SERVICE
         price_list {
           currency: "USD"
           unit_amount: "15.99"
           price_type: PRICE_TYPE_RECURRING
           recurring_details {
             interval: RECURRING_INTERVAL_MONTH
             trial_period_days: 14
             pricing_model: PRICING_MODEL_FLAT_RATE
             interval_count: 1
           }
           priority: 1
           is_active: PRICE_ACTIVE_STATE_ACTIVE
           is_default_price: true
         }
         price_list {
           currency: "JPY"
           unit_amount: "680"
           price_type: PRICE_TYPE_ONE_TIME
           is_default_price: false
         }
       )pb",
       http::Method::kPost, "/product", R"pb(
         product {
           product_id: "prd_pro"
           name: "Pro Plan"
           active: true
           description: "Everything in Starter, plus priority support"
           default_price: "price_pro_monthly"
           image: "https://cdn.clinkbill.com/oss/oss_7h2k9d.png"
           tax_category: TAX_CATEGORY_SOFTWARE_SERVICE
           price_list {
             price_id: "price_pro_monthly"
             price_snapshot_id: "ps_pro_monthly_v1"
             product_id: "prd_pro"
             currency: "USD"
             unit_amount: "15.99"
             price_type: PRICE_TYPE_RECURRING
             recurring {
               interval: RECURRING_INTERVAL_MONTH
               trial_period_days: 14
               pricing_model: PRICING_MODEL_FLAT_RATE
               interval_count: 1
             }
             active: true
             create_time { seconds: 1751328000 }
           }
           price_list {
             price_id: "price_pro_once_jpy"
             price_snapshot_id: "ps_pro_once_jpy_v1"
             product_id: "prd_pro"
             currency: "JPY"
             unit_amount: "680"
             price_type: PRICE_TYPE_ONE_TIME
             active: true
             create_time { seconds: 1751328000 }
           }
           create_time { seconds: 1751328000 }
           update_time { seconds: 1751328000 }
           localized_names { key: "en-US" value: "Pro Plan" }
           localized_names { key: "zh-CN" value: "专业版" }
         }
       )pb"},
      {"BillingService.CreatePrice", "create_price", R"pb(
         product_id: "prd_pro"
         currency: "EUR"
         unit_amount: "29.99"
         price_type: PRICE_TYPE_RECURRING
         recurring_details {
           interval: RECURRING_INTERVAL_CUSTOM
           pricing_model: PRICING_MODEL_PER_SEAT
           transform_quantity {
             divide_by: 1024
             round: TRANSFORM_QUANTITY_ROUND_UP
           }
           interval_count: 14
         }
         priority: 0
         is_default_price: false
       )pb",
       http::Method::kPost, "/price", R"pb(
         price {
           price_id: "price_pro_eur"
           price_snapshot_id: "ps_pro_eur_v1"
           product_id: "prd_pro"
           currency: "EUR"
           unit_amount: "29.99"
           price_type: PRICE_TYPE_RECURRING
           recurring {
             interval: RECURRING_INTERVAL_CUSTOM
             pricing_model: PRICING_MODEL_PER_SEAT
             transform_quantity {
               divide_by: 1024
               round: TRANSFORM_QUANTITY_ROUND_UP
             }
             interval_count: 14
           }
           active: true
           create_time { seconds: 1751414400 }
         }
       )pb"},
      // PUT: only the fields set are sent; the path parameter is not in the
      // body.
      {"BillingService.UpdatePrice", "update_price", R"pb(
         price_id: "price_pro_eur"
         unit_amount: "34.50"
         currency: "EUR"
         is_active: PRICE_ACTIVE_STATE_INACTIVE
         priority: 2
       )pb",
       http::Method::kPut, "/price/price_pro_eur", R"pb(
         price {
           price_id: "price_pro_eur"
           price_snapshot_id: "ps_pro_eur_v2"
           product_id: "prd_pro"
           currency: "EUR"
           unit_amount: "34.50"
           price_type: PRICE_TYPE_RECURRING
           recurring {
             interval: RECURRING_INTERVAL_CUSTOM
             pricing_model: PRICING_MODEL_PER_SEAT
             transform_quantity {
               divide_by: 1024
               round: TRANSFORM_QUANTITY_ROUND_UP
             }
             interval_count: 14
           }
           active: false
           create_time { seconds: 1751414400 }
         }
       )pb"},
  };
  static const bool appended = [] {
    for (RpcCase& c : CasesFromFiles()) cases->push_back(std::move(c));
    return true;
  }();
  (void)appended;
  return *cases;
}

// The rows of the table that are data only: testdata/<golden>_case.txt holds
//   rpc: <Service.Method>
//   http: <METHOD> <path and query>
//   --- request
//   <the request, text format>
//   --- response
//   <the expected decoding of <golden>_response.json, text format>
// beside <golden>_request.json (for a body) and <golden>_response.json, so
// adding an RPC's goldens needs no C++. A malformed file aborts the test
// binary, naming it.
std::vector<RpcCase> CasesFromFiles() {
  static auto* const strings = new std::deque<std::string>();  // c_str()s.
  std::vector<RpcCase> out;
  for (const std::string& name : TestdataFilesEndingIn("_case.txt")) {
    const std::string text = ReadTestdata(name);
    auto broken = [&name](absl::string_view why) {
      fprintf(stderr, "testdata/%s: %s\n", name.c_str(),
              std::string(why).c_str());
      std::abort();
    };
    const size_t request_at = text.find("\n--- request\n");
    const size_t response_at = text.find("\n--- response\n");
    if (request_at == std::string::npos || response_at == std::string::npos ||
        response_at < request_at + 13) {
      broken("needs '--- request' then '--- response' sections");
    }
    std::string rpc;
    std::string http;
    for (absl::string_view line :
         absl::StrSplit(absl::string_view(text).substr(0, request_at), '\n')) {
      if (absl::ConsumePrefix(&line, "rpc: ")) rpc = std::string(line);
      if (absl::ConsumePrefix(&line, "http: ")) http = std::string(line);
    }
    const std::vector<std::string> method_and_path =
        absl::StrSplit(http, absl::MaxSplits(' ', 1));
    if (rpc.empty() || method_and_path.size() != 2) {
      broken("needs 'rpc: Service.Method' and 'http: METHOD /path'");
    }
    http::Method method = http::Method::kGet;
    if (method_and_path[0] == "POST") {
      method = http::Method::kPost;
    } else if (method_and_path[0] == "PUT") {
      method = http::Method::kPut;
    } else if (method_and_path[0] == "DELETE") {
      method = http::Method::kDelete;
    } else if (method_and_path[0] == "PATCH") {
      method = http::Method::kPatch;
    } else if (method_and_path[0] != "GET") {
      broken("unknown HTTP method");
    }
    RpcCase c;
    c.rpc = strings->emplace_back(rpc).c_str();
    c.golden =
        strings->emplace_back(absl::StripSuffix(name, "_case.txt")).c_str();
    c.request = text.substr(request_at + 13, response_at - request_at - 13);
    c.http_method = method;
    c.path_and_query = strings->emplace_back(method_and_path[1]).c_str();
    c.response = text.substr(response_at + 14);
    out.push_back(std::move(c));
  }
  return out;
}

const RpcCase& CaseFor(const std::string& rpc) {
  for (const RpcCase& c : RpcCases()) {
    if (rpc == c.rpc) return c;
  }
  std::abort();
}

class RpcTest : public ::testing::TestWithParam<RpcCase> {};

TEST_P(RpcTest, EncodesRequestToGolden) {
  const RpcCase& c = GetParam();
  const RestMethod* rest = Rest(c.rpc);
  ASSERT_NE(rest, nullptr);
  const std::unique_ptr<Message> request =
      FromText(rest->method->input_type(), c.request);

  ASSERT_TRUE(Codec().Validate(*rest, *request).ok())
      << Codec().Validate(*rest, *request);
  const absl::StatusOr<http::HttpRequest> http =
      Codec().EncodeRequest(*rest, *request);
  ASSERT_TRUE(http.ok()) << http.status();

  EXPECT_EQ(http->method, c.http_method);
  EXPECT_EQ(http->path_and_query, c.path_and_query);
  std::string content_type;
  for (const auto& [name, value] : http->headers) {
    if (name == "Content-Type") content_type = value;
  }
  constexpr absl::string_view kMultipart = "multipart/form-data; boundary=";
  if (absl::StartsWith(content_type, kMultipart)) {
    // The golden spells the (random) boundary "{boundary}" and ends lines in
    // LF; the body must be exactly it with the boundary and CRLF put in.
    const std::string boundary(content_type.substr(kMultipart.size()));
    const std::string want = absl::StrReplaceAll(
        ReadTestdata(absl::StrCat(c.golden, "_request.multipart")),
        {{"{boundary}", boundary}, {"\n", "\r\n"}});
    EXPECT_EQ(http->body, want);
  } else if (c.http_method == http::Method::kGet ||
             c.http_method == http::Method::kDelete) {
    EXPECT_EQ(http->body, "");  // No body, not even "{}".
    EXPECT_TRUE(http->headers.empty());
  } else {
    EXPECT_EQ(
        CanonicalJson(http->body),
        CanonicalJson(ReadTestdata(absl::StrCat(c.golden, "_request.json"))))
        << "body: " << http->body;
  }
}

TEST_P(RpcTest, DecodesResponseGolden) {
  const RpcCase& c = GetParam();
  const Decoded got =
      Decode(c.rpc, ReadTestdata(absl::StrCat(c.golden, "_response.json")));
  ASSERT_TRUE(got.status.ok()) << got.status;

  EXPECT_TRUE(got.envelope.has_code);
  EXPECT_EQ(got.envelope.code, 200);
  // "Success" on the webhook-endpoint APIs (clink-api.md §3.1).
  EXPECT_TRUE(absl::EqualsIgnoreCase(got.envelope.msg, "success"))
      << got.envelope.msg;
  EXPECT_EQ(got.stats.unknown_fields, 0)
      << absl::StrJoin(got.stats.unknown_examples, ", ");
  const std::unique_ptr<Message> want =
      FromText(got.response->GetDescriptor(), c.response);
  EXPECT_TRUE(ProtoEquals(*want, *got.response));
}

// MessageToClinkJson (the emulator's encoder) writes what DecodeResponse reads:
// re-encoding the decoded golden and decoding it again gives the same message,
// nothing unknown.
TEST_P(RpcTest, ResponseRoundTripsThroughClinkJson) {
  const RpcCase& c = GetParam();
  const RestMethod* rest = Rest(c.rpc);
  ASSERT_NE(rest, nullptr);
  const std::unique_ptr<Message> want =
      FromText(rest->method->output_type(), c.response);

  std::string body;
  const google::protobuf::Reflection* r = want->GetReflection();
  if (rest->shape == v1::RESPONSE_SHAPE_LIST) {
    std::vector<std::string> rows;
    for (int i = 0; i < r->FieldSize(*want, rest->response_body); ++i) {
      absl::StatusOr<std::string> row = Codec().MessageToClinkJson(
          r->GetRepeatedMessage(*want, rest->response_body, i));
      ASSERT_TRUE(row.ok()) << row.status();
      rows.push_back(*row);
    }
    body = absl::StrCat(R"({"code":200,"msg":"success","total":)",
                        r->GetInt64(*want, rest->total), R"(,"rows":[)",
                        absl::StrJoin(rows, ","), "]}");
  } else if (rest->shape == v1::RESPONSE_SHAPE_ARRAY) {
    std::vector<std::string> items;
    for (int i = 0; i < r->FieldSize(*want, rest->response_body); ++i) {
      absl::StatusOr<std::string> item = Codec().MessageToClinkJson(
          r->GetRepeatedMessage(*want, rest->response_body, i));
      ASSERT_TRUE(item.ok()) << item.status();
      items.push_back(*item);
    }
    body = Ok(absl::StrCat("[", absl::StrJoin(items, ","), "]"));
  } else {
    const Message& payload = rest->response_body == nullptr
                                 ? *want
                                 : r->GetMessage(*want, rest->response_body);
    absl::StatusOr<std::string> data = Codec().MessageToClinkJson(payload);
    ASSERT_TRUE(data.ok()) << data.status();
    body = Ok(*data);
  }

  const Decoded got = Decode(c.rpc, body);
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 0)
      << absl::StrJoin(got.stats.unknown_examples, ", ");
  EXPECT_TRUE(ProtoEquals(*want, *got.response)) << body;
}

INSTANTIATE_TEST_SUITE_P(AllRpcs, RpcTest, ::testing::ValuesIn(RpcCases()),
                         [](const ::testing::TestParamInfo<RpcCase>& info) {
                           return std::string(info.param.golden);
                         });

TEST(RestCodecCreateTest,
     CompilesEveryRpcOfTheContractAndTheTableCoversThemAll) {
  absl::StatusOr<std::unique_ptr<RestCodec>> codec =
      RestCodec::Create(GatewayServices());
  ASSERT_TRUE(codec.ok()) << codec.status();
  std::vector<std::string> compiled;
  for (const RestMethod* m : (*codec)->methods()) {
    compiled.push_back(std::string(m->method->service()->name()) + "." +
                       m->method->name());
  }
  std::vector<std::string> covered;
  for (const RpcCase& c : RpcCases()) covered.push_back(c.rpc);
  EXPECT_EQ(compiled.size(), ContractRpcCount());
  EXPECT_THAT(compiled, ::testing::UnorderedElementsAreArray(covered));
}

TEST(RestCodecCreateTest, TheContractIsFoundInTheGeneratedPool) {
  // Every service of package clink.gateway.v1, each file's, none listed in
  // C++: the three of the first release at least.
  EXPECT_THAT(GatewayServiceNames(),
              ::testing::IsSupersetOf({"clink.gateway.v1.BillingService",
                                       "clink.gateway.v1.CheckoutService",
                                       "clink.gateway.v1.PaymentService"}));
  for (const std::string& name : GatewayServiceNames()) {
    EXPECT_TRUE(absl::StartsWith(name, "clink.gateway.v1.")) << name;
  }
  EXPECT_GT(ContractRpcCount(), 0u);
}

TEST(RestCodecCreateTest,
     CreateForServicesMatchesCreateAndRejectsUnknownServices) {
  absl::StatusOr<std::unique_ptr<RestCodec>> codec =
      RestCodec::CreateForServices(GatewayServiceNames());
  ASSERT_TRUE(codec.ok()) << codec.status();
  EXPECT_EQ((*codec)->methods().size(), ContractRpcCount());

  absl::StatusOr<std::unique_ptr<RestCodec>> missing =
      RestCodec::CreateForServices({"clink.gateway.v1.NoSuchService"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(RestCodecLookupTest, FindByRequestTypeAndMethodAttributes) {
  for (const RpcCase& c : RpcCases()) {
    SCOPED_TRACE(c.rpc);
    const RestMethod* rest = Rest(c.rpc);
    ASSERT_NE(rest, nullptr);
    EXPECT_EQ(Codec().FindByRequestType(*rest->method->input_type()), rest);
    EXPECT_EQ(rest->mutating(), c.http_method != http::Method::kGet);
    // Only refunds (refundMerchantOrderId) and webhook-endpoint ensure (keyed
    // by url, clink-api.md §4) are deduplicated by Clink.
    EXPECT_EQ(rest->idempotent_upstream,
              std::string(c.rpc) == "PaymentService.CreateRefund" ||
                  std::string(c.rpc) == "WebhookService.EnsureWebhookEndpoint");
  }
  EXPECT_EQ(Rest("CheckoutService.GetCheckoutSession")->endpoint,
            "GET /checkout/session/{session_id}");
  EXPECT_EQ(Codec().FindByRequestType(*v1::Refund::descriptor()), nullptr);
}

// GET /product/{id}: Clink's docs example is the bare product, without the
// envelope.
TEST(RestCodecEnvelopeTest, BareResourceWithoutEnvelope) {
  const Decoded got = Decode("BillingService.GetProduct",
                             ReadTestdata("get_product_bare_response.json"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_FALSE(got.envelope.has_code);
  EXPECT_EQ(got.stats.unknown_fields, 0)
      << absl::StrJoin(got.stats.unknown_examples, ", ");
  const std::unique_ptr<Message> want =
      FromText(got.response->GetDescriptor(),
               CaseFor("BillingService.GetProduct").response);
  EXPECT_TRUE(ProtoEquals(*want, *got.response));
}

// -----------------------------------------------------------------------------
// 2. Money.

// The member `key` of the JSON object `body`; a test failure when missing.
const Json* Member(const Json& body, const std::string& key) {
  const Json* member = body.Find(key);
  if (member == nullptr) ADD_FAILURE() << "no member " << key;
  return member;
}

class RequestAmountTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RequestAmountTest, IsSentAsAJsonNumberWithTheCallersExactDigits) {
  const std::string& amount = GetParam();
  const RestMethod* rest = Rest("CheckoutService.CreateCheckoutSession");
  ASSERT_NE(rest, nullptr);
  auto request =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  request.set_original_amount(amount);
  request.mutable_price_data_list(1)->set_unit_amount(amount);

  ASSERT_TRUE(Codec().Validate(*rest, request).ok())
      << Codec().Validate(*rest, request);
  const absl::StatusOr<http::HttpRequest> http =
      Codec().EncodeRequest(*rest, request);
  ASSERT_TRUE(http.ok()) << http.status();
  Json body;
  ASSERT_TRUE(ParseJson(http->body, &body)) << http->body;

  const Json* original = Member(body, "originalAmount");
  ASSERT_NE(original, nullptr);
  EXPECT_EQ(original->kind, Json::kNumber);
  EXPECT_EQ(original->text, amount);
  const Json* items = Member(body, "priceDataList");
  ASSERT_NE(items, nullptr);
  ASSERT_EQ(items->values.size(), 2u);
  const Json* unit = items->values[1].Find("unitAmount");
  ASSERT_NE(unit, nullptr);
  EXPECT_EQ(unit->kind, Json::kNumber);
  EXPECT_EQ(unit->text, amount);
  EXPECT_THAT(http->body,
              HasSubstr(absl::StrCat("\"originalAmount\":", amount, ",")));
}

// In USD (the session's currency): finer amounts are refused (MoneyScaleTest);
// trailing zeros are whole cents and keep their digits.
INSTANTIATE_TEST_SUITE_P(Amounts, RequestAmountTest,
                         ::testing::Values("19.99", "0.10", "680", "12.340000",
                                           "123456789012345678901234567890",
                                           "19.990", "9007199254740993",
                                           "0.300000000000000000"));

class ResponseAmountTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ResponseAmountTest, IsReadDigitForDigit) {
  const std::string& amount = GetParam();
  const Decoded got = Decode("PaymentService.CreatePayment",
                             Ok(absl::StrCat(R"({"orderId":"ord_1","amount":)",
                                             amount, R"(,"currency":"USD"})")));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 0);
  EXPECT_EQ(
      static_cast<const v1::CreatePaymentResponse&>(*got.response).amount(),
      amount);

  // Nested, in a list row.
  const Decoded list = Decode(
      "PaymentService.ListOrders",
      absl::StrCat(
          R"({"total":1,"code":200,"msg":"success","rows":[{"priceDataList":[)",
          R"({"name":"x","unitAmount":)", amount, "}]}]}"));
  ASSERT_TRUE(list.status.ok()) << list.status;
  const auto& orders =
      static_cast<const v1::ListOrdersResponse&>(*list.response);
  ASSERT_EQ(orders.orders_size(), 1);
  ASSERT_EQ(orders.orders(0).price_data_list_size(), 1);
  EXPECT_EQ(orders.orders(0).price_data_list(0).unit_amount(), amount);
}

INSTANTIATE_TEST_SUITE_P(
    Amounts, ResponseAmountTest,
    ::testing::Values("1.10", "100.00", "0.10", "19.990", "680", "0",
                      "0.30000000000000004", "9007199254740993",
                      "123456789012345678901234567890",
                      "-4.50"));  // Proration lines may be negative.

TEST(MoneyTest, EncoderWritesResponseAmountsDigitForDigit) {
  v1::CreatePaymentResponse response;
  response.set_amount("9007199254740993");
  const absl::StatusOr<std::string> json = Codec().MessageToClinkJson(response);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"amount":9007199254740993})");
}

TEST(MoneyTest, ExponentAmountsAreRewrittenExactlyAsPlainDigits) {
  // Java's BigDecimal prints these; the digits are shifted as text, no double.
  for (const auto& [json, plain] :
       std::vector<std::pair<std::string, std::string>>{
           {"1e3", "1000"},
           {"1.5E2", "150"},
           {"0E-8", "0.00000000"},
           {"1.50e1", "15.0"},
           {"12345678901234567890.5E-10", "1234567890.12345678905"}}) {
    SCOPED_TRACE(json);
    const Decoded got = Decode("PaymentService.CreatePayment",
                               Ok(absl::StrCat(R"({"amount":)", json, "}")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(
        static_cast<const v1::CreatePaymentResponse&>(*got.response).amount(),
        plain);
    EXPECT_EQ(got.stats.unknown_fields, 0);
    EXPECT_EQ(got.stats.unreadable_amounts, 0);
  }
}

TEST(MoneyTest, AmountThatIsNotANumberIsCountedAsUnreadable) {
  for (const std::string& bad : {std::string("true"), std::string(R"("abc")"),
                                 std::string("{}"), std::string("1e45")}) {
    SCOPED_TRACE(bad);
    const Decoded got = Decode("PaymentService.CreatePayment",
                               Ok(absl::StrCat(R"({"amount":)", bad, "}")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(
        static_cast<const v1::CreatePaymentResponse&>(*got.response).amount(),
        "");
    EXPECT_EQ(got.stats.unreadable_amounts, 1);
    EXPECT_THAT(got.stats.unknown_examples, ElementsAre("data.amount"));
  }
}

// Strict UTF-8 check, independent of the codec's.
bool IsUtf8ForTest(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n = c < 0x80         ? 0
            : (c >> 5) == 6  ? 1
            : (c >> 4) == 14 ? 2
            : (c >> 3) == 30 ? 3
                             : -1;
    if (n < 0 || i + n >= s.size()) return false;
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// `depth` nested JSON arrays around `inner`: "[[[inner]]]".
std::string Nested(int depth, const std::string& inner = "1") {
  return absl::StrCat(std::string(depth, '['), inner, std::string(depth, ']'));
}

TEST(DeepJsonTest, MetadataNestedTwoHundredThousandLevelsIsLeftOutNotWalked) {
  // ~400 KB, under the transport's response cap: once crashed the process
  // (stack overflow in the recursive serialisation of the map value).
  const std::string deep = Nested(200000);
  for (const std::string& metadata :
       {absl::StrCat(R"({"arn":"8377","deep":)", deep, "}"),
        // Clink may send the metadata as a JSON-encoded string.
        absl::StrCat(R"("{\"arn\":\"8377\",\"deep\":)", deep, R"(}")")}) {
    const Decoded got =
        Decode("PaymentService.CreateRefund",
               Ok(absl::StrCat(R"({"refundId":"rfd_1","refundAmount":1.50,)",
                               R"("metadata":)", metadata, "}")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    const auto& refund =
        static_cast<const v1::CreateRefundResponse&>(*got.response).refund();
    EXPECT_EQ(refund.refund_id(), "rfd_1");
    EXPECT_EQ(refund.refund_amount(), "1.50");
    EXPECT_EQ(refund.metadata().at("arn"), "8377");
    EXPECT_FALSE(refund.metadata().contains("deep"));
    EXPECT_EQ(got.stats.values_too_deep, 1);
    EXPECT_THAT(got.stats.unknown_examples, ElementsAre("data.metadata.deep"));
  }
}

TEST(DeepJsonTest, MetadataValuesUpToThirtyTwoLevelsAreKeptAsJsonText) {
  const Decoded got = Decode(
      "PaymentService.CreateRefund",
      Ok(absl::StrCat(R"({"refundId":"rfd_1","metadata":{"ok":)",
                      Nested(32, R"("x")"), R"(,"over":)", Nested(33), "}}")));
  ASSERT_TRUE(got.status.ok()) << got.status;
  const auto& metadata =
      static_cast<const v1::CreateRefundResponse&>(*got.response)
          .refund()
          .metadata();
  EXPECT_EQ(metadata.at("ok"), Nested(32, R"("x")"));
  EXPECT_FALSE(metadata.contains("over"));
  EXPECT_EQ(got.stats.values_too_deep, 1);
}

TEST(DeepJsonTest, DeepValuesUnderUnknownMembersAndWholeBodiesAreHarmless) {
  // Ignored members are never walked; a body that is one deep array is not
  // an object. Neither recurses per level.
  const Decoded unknown = Decode(
      "PaymentService.GetOrder",
      Ok(absl::StrCat(R"({"orderId":"ord_1","x":)", Nested(200000), "}")));
  ASSERT_TRUE(unknown.status.ok()) << unknown.status;
  EXPECT_EQ(unknown.stats.values_too_deep, 0);
  EXPECT_THAT(unknown.stats.unknown_examples, ElementsAre("data.x"));
  const Decoded array = Decode("PaymentService.GetOrder", Nested(200000));
  EXPECT_EQ(array.status.code(), absl::StatusCode::kInternal);
}

TEST(HostileStringsTest, LoneSurrogateEscapesNeverReachAProtoString) {
  // "\udd00" passes RapidJSON's encoding check (it checks raw bytes) but
  // decodes to ill-formed UTF-8, which a proto3 string must not hold.
  const Decoded got = Decode(
      "PaymentService.CreateRefund",
      Ok(R"({"refundId":"rfd_\udd00","orderId":"ord_1","metadata":)"
         R"({"a\udd00":"x","b":"y\udc00","c":["\udfff"],"ok":"fine"}})"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  const auto& refund =
      static_cast<const v1::CreateRefundResponse&>(*got.response).refund();
  EXPECT_EQ(refund.refund_id(), "");
  EXPECT_EQ(refund.order_id(), "ord_1");
  EXPECT_EQ(refund.metadata().size(), 1u);
  EXPECT_EQ(refund.metadata().at("ok"), "fine");
  EXPECT_EQ(got.stats.unreadable_strings, 4);
  for (const std::string& example : got.stats.unknown_examples) {
    EXPECT_TRUE(IsUtf8ForTest(example)) << example;
  }
  // A well-formed pair is fine.
  const Decoded pair = Decode("PaymentService.GetOrder",
                              Ok(R"({"orderId":"ord_\ud83d\ude00"})"));
  EXPECT_EQ(pair.stats.unreadable_strings, 0);
  EXPECT_EQ(static_cast<const v1::GetOrderResponse&>(*pair.response)
                .order()
                .order_id(),
            "ord_\xF0\x9F\x98\x80");
}

TEST(HostileStringsTest, TimestampsOutsideTheProtoRangeAreLeftOut) {
  for (const char* created :
       {"-62135596801000", "253402300800000", "-99999999999999999"}) {
    const Decoded got = Decode(
        "PaymentService.CreateRefund",
        Ok(absl::StrCat(R"({"refundId":"rfd_1","createTime":)", created, "}")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    const auto& refund =
        static_cast<const v1::CreateRefundResponse&>(*got.response).refund();
    EXPECT_FALSE(refund.has_create_time()) << created;
    EXPECT_THAT(got.stats.unknown_examples, ElementsAre("data.createTime"));
  }
}

TEST(RestCodecEnvelopeTest, MissingEnvelopeCodeIsAnErrorUnlessAllowed) {
  // A 2xx body without `code` is no success for a payment (only GetProduct
  // may answer with the bare resource).
  const Decoded payment =
      Decode("PaymentService.CreatePayment", R"({"orderId":"ord_1"})");
  EXPECT_EQ(payment.status.code(), absl::StatusCode::kInternal);
  const Decoded order =
      Decode("PaymentService.GetOrder", R"({"error":"gateway timeout"})");
  EXPECT_EQ(order.status.code(), absl::StatusCode::kInternal);
}

TEST(RestCodecEnvelopeTest, MissingPayloadIsFlaggedUnlessOptional) {
  const Decoded payment =
      Decode("PaymentService.CreatePayment", R"({"code":200,"msg":"success"})");
  ASSERT_TRUE(payment.status.ok());
  EXPECT_TRUE(payment.envelope.payload_missing);
  const Decoded null_data = Decode("PaymentService.GetOrder",
                                   R"({"code":200,"msg":"ok","data":null})");
  EXPECT_TRUE(null_data.envelope.payload_missing);
  // Clink documents cancel as answering {code, msg} only.
  const Decoded cancel = Decode("BillingService.CancelSubscription",
                                R"({"code":200,"msg":"success"})");
  ASSERT_TRUE(cancel.status.ok());
  EXPECT_FALSE(cancel.envelope.payload_missing);
}

class InvalidRequestAmountTest : public ::testing::TestWithParam<std::string> {
};

TEST_P(InvalidRequestAmountTest, FailsValidationNamingTheField) {
  const std::string& amount = GetParam();
  const RestMethod* rest = Rest("CheckoutService.CreateCheckoutSession");
  ASSERT_NE(rest, nullptr);

  auto top =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  top.set_original_amount(amount);
  const absl::Status top_status = Codec().Validate(*rest, top);
  EXPECT_EQ(top_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(top_status), ElementsAre("original_amount"));

  auto nested =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  nested.mutable_price_data_list(1)->set_unit_amount(amount);
  const absl::Status nested_status = Codec().Validate(*rest, nested);
  EXPECT_EQ(nested_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(nested_status),
              ElementsAre("price_data_list[1].unit_amount"));

  // Also in the optional amount of a payment, and the required one of a refund.
  auto payment = FromText<v1::CreatePaymentRequest>(kCreatePaymentRequest);
  payment.set_amount(amount);
  if (!amount.empty()) {  // "" is simply "not set" for an optional amount.
    EXPECT_THAT(ViolationFields(Codec().Validate(
                    *Rest("PaymentService.CreatePayment"), payment)),
                ElementsAre("amount"));
  }
  auto refund = FromText<v1::CreateRefundRequest>(kCreateRefundRequest);
  refund.set_refund_amount(amount);
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *Rest("PaymentService.CreateRefund"), refund)),
              ElementsAre("refund_amount"));
}

INSTANTIATE_TEST_SUITE_P(
    Amounts, InvalidRequestAmountTest,
    ::testing::Values("1e3", "-1", "1.2.3", "", ".5", "01", "1.", "+1", " 1",
                      "1 ", "19,99", "0x10", "NaN", "1_000",
                      "1,\"customerId\":\"cus_other\"",
                      std::string(41, '9')),  // Longer than kMaxDecimalLength.
    [](const ::testing::TestParamInfo<std::string>& info) {
      return absl::StrCat("case", info.index);
    });

// EncodeRequest trusts Validate() for the rules, but never writes a string that
// is not a plain decimal as raw JSON: the body stays well-formed and a crafted
// amount cannot add members to it.
TEST(MoneyTest, UnvalidatedAmountCannotBreakOrInjectIntoTheBody) {
  const RestMethod* rest = Rest("PaymentService.CreatePayment");
  ASSERT_NE(rest, nullptr);
  for (const std::string& bad : {std::string("1,\"customerId\":\"cus_other\""),
                                 std::string("1.2.3"), std::string("1e3")}) {
    SCOPED_TRACE(bad);
    auto request = FromText<v1::CreatePaymentRequest>(kCreatePaymentRequest);
    request.set_amount(bad);
    const absl::StatusOr<http::HttpRequest> http =
        Codec().EncodeRequest(*rest, request);
    ASSERT_TRUE(http.ok()) << http.status();
    Json body;
    ASSERT_TRUE(ParseJson(http->body, &body)) << http->body;
    ASSERT_NE(body.Find("amount"), nullptr);
    EXPECT_NE(body.Find("amount")->kind, Json::kNumber);
    EXPECT_EQ(body.Find("customerId")->text, "cus_xxxxx");
    EXPECT_EQ(body.keys.size(), 11u) << http->body;
  }
}

TEST(MoneyRulesTest, PositiveRejectsZero) {
  const RestMethod* rest = Rest("CheckoutService.CreateCheckoutSession");
  ASSERT_NE(rest, nullptr);
  for (const char* zero : {"0", "0.00"}) {
    SCOPED_TRACE(zero);
    auto request = FromText<v1::CreateCheckoutSessionRequest>(
        kCreateCheckoutSessionRequest);
    request.set_original_amount(zero);
    const absl::Status status = Codec().Validate(*rest, request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ViolationFields(status), ElementsAre("original_amount"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("greater than 0"));
  }
  auto request =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  request.set_original_amount("0.01");
  EXPECT_TRUE(Codec().Validate(*rest, request).ok());
}

TEST(MoneyRulesTest, MinDecimalOnAgentPaymentSessionAmount) {
  const RestMethod* rest = Rest("PaymentService.CreateAgentPaymentSession");
  ASSERT_NE(rest, nullptr);
  for (const char* low : {"0.49", "0.4", "0", "0.05"}) {
    SCOPED_TRACE(low);
    auto request = FromText<v1::CreateAgentPaymentSessionRequest>(
        kCreateAgentPaymentSessionRequest);
    request.set_amount(low);
    const absl::Status status = Codec().Validate(*rest, request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ViolationFields(status), ElementsAre("amount"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("at least 0.5"));
  }
  for (const char* ok : {"0.5", "0.50", "0.51", "10"}) {
    SCOPED_TRACE(ok);
    auto request = FromText<v1::CreateAgentPaymentSessionRequest>(
        kCreateAgentPaymentSessionRequest);
    request.set_amount(ok);
    EXPECT_TRUE(Codec().Validate(*rest, request).ok())
        << Codec().Validate(*rest, request);
  }
}

// Amounts are whole minor units of their currency (ICU: USD 2, JPY 0, KWD and
// BHD 3 decimal places); currency codes are current ISO 4217 codes in upper
// case. Anything else is refused naming the field, before anything is sent.
struct ScaleCase {
  std::string rpc;
  std::string request;            // Text format.
  std::vector<std::string> want;  // Violation fields; empty: valid.
  std::string want_message = "";  // A substring of the status message.
};

std::string PaymentText(const std::string& amount,
                        const std::string& currency) {
  return absl::Substitute(R"pb(
                            customer_id: "cus_1"
                            payment_instrument_id: "pi_1"
                            payment_method_type: PAYMENT_METHOD_TYPE_CARD
                            return_url: "https://m.example/r"
                            amount: "$0"
                            currency: "$1")pb",
                          amount, currency);
}

std::string CheckoutText(const std::string& amount, const std::string& currency,
                         const std::string& items = "") {
  return absl::Substitute(R"pb(
                            customer_id: "cus_1"
                            ui_mode: UI_MODE_HOSTED_PAGE
                            original_amount: "$0"
                            original_currency: "$1" $2)pb",
                          amount, currency, items);
}

std::string AgentText(const std::string& amount, const std::string& currency) {
  return absl::Substitute(
      R"pb(customer_email: "a@example.com" amount: "$0" currency: "$1")pb",
      amount, currency);
}

TEST(MoneyScaleTest, AmountsAreWholeMinorUnitsOfTheirCurrency) {
  const std::string kPay = "PaymentService.CreatePayment";
  const std::string kCheckout = "CheckoutService.CreateCheckoutSession";
  const std::string kAgent = "PaymentService.CreateAgentPaymentSession";
  const std::string kRefund = "PaymentService.CreateRefund";
  const std::string kSub = "BillingService.CreateSubscription";
  const std::vector<ScaleCase> cases = {
      // Payments.
      {kPay, PaymentText("19.99", "USD"), {}},
      {kPay, PaymentText("0.01", "USD"), {}},
      {kPay,
       PaymentText("0.001", "USD"),
       {"amount"},
       "more decimal places than USD allows (at most 2)"},
      {kPay, PaymentText("19.999", "USD"), {"amount"}},
      {kPay, PaymentText("1500", "JPY"), {}},
      {kPay, PaymentText("1500.00", "JPY"), {}},  // Trailing zeros: whole yen.
      {kPay,
       PaymentText("1.5", "JPY"),
       {"amount"},
       "more decimal places than JPY allows (at most 0)"},
      {kPay, PaymentText("1000.1", "KRW"), {"amount"}},
      {kPay, PaymentText("1.234", "KWD"), {}},
      {kPay,
       PaymentText("1.2345", "KWD"),
       {"amount"},
       "KWD allows (at most 3)"},
      {kPay, PaymentText("0.005", "BHD"), {}},
      {kPay, PaymentText("0.0005", "BHD"), {"amount"}},
      // Unknown, lower-case, withdrawn and test codes.
      {kPay, PaymentText("1", "XYZ"), {"currency"}, "ISO 4217 currency code"},
      {kPay,
       PaymentText("1.00", "usd"),
       {"currency"},
       "must be upper case, like \"USD\""},
      {kPay, PaymentText("1", "Jpy"), {"currency"}, "upper case"},
      {kPay, PaymentText("1", "DEM"), {"currency"}},
      {kPay, PaymentText("1", "XTS"), {"currency"}},
      {kPay, PaymentText("1", "US"), {"currency"}},
      {kPay, PaymentText("1", "USDD"), {"currency"}},
      // Checkout sessions.
      {kCheckout, CheckoutText("19.99", "USD"), {}},
      {kCheckout, CheckoutText("0.001", "USD"), {"original_amount"}},
      {kCheckout, CheckoutText("1.5", "JPY"), {"original_amount"}},
      {kCheckout, CheckoutText("1", "jpy"), {"original_currency"}},
      // Line items: their own currency, else the session's.
      {kCheckout,
       CheckoutText("20", "USD", R"pb(price_data_list {
                                        name: "a"
                                        unit_amount: "9.999"
                                      })pb"),
       {"price_data_list[0].unit_amount"}},
      {kCheckout,
       CheckoutText("1000", "JPY",
                    R"pb(price_data_list { name: "a" unit_amount: "9.99" })pb"),
       {"price_data_list[0].unit_amount"},
       "JPY allows"},
      {kCheckout,
       CheckoutText("20", "USD", R"pb(price_data_list {
                                        name: "a"
                                        unit_amount: "9.5"
                                        currency: "JPY"
                                      })pb"),
       {"price_data_list[0].unit_amount"}},
      {kCheckout,
       CheckoutText("20", "USD", R"pb(price_data_list {
                                        name: "a"
                                        unit_amount: "9"
                                        currency: "usd"
                                      })pb"),
       {"price_data_list[0].currency"}},
      {kCheckout,
       CheckoutText("20", "USD", R"pb(price_data_list {
                                        name: "a"
                                        unit_amount: "9.99"
                                        currency: "USD"
                                      })pb"),
       {}},
      // A payment by price id names no currency: a line item is held to the
      // finest minor unit of any currency.
      {kPay,
       R"pb(customer_id: "cus_1"
            payment_instrument_id: "pi_1"
            payment_method_type: PAYMENT_METHOD_TYPE_CARD
            return_url: "https://m.example/r"
            price_id: "price_1"
            product_id: "prd_1"
            price_data_list { name: "a" unit_amount: "1.001" })pb",
       {}},
      {kPay,
       R"pb(customer_id: "cus_1"
            payment_instrument_id: "pi_1"
            payment_method_type: PAYMENT_METHOD_TYPE_CARD
            return_url: "https://m.example/r"
            price_id: "price_1"
            product_id: "prd_1"
            price_data_list { name: "a" unit_amount: "1.0001" })pb",
       {"price_data_list[0].unit_amount"},
       "than any currency allows"},
      // Agent payment sessions.
      {kAgent, AgentText("25.00", "USD"), {}},
      {kAgent, AgentText("25.001", "USD"), {"amount"}},
      {kAgent, AgentText("100.5", "JPY"), {"amount"}},
      {kAgent, AgentText("25", "ABC"), {"currency"}},
      // Refunds are in their order's currency, which the request does not name.
      {kRefund,
       R"pb(order_id: "ord_1"
            refund_merchant_order_id: "r1"
            refund_amount: "5.001")pb",
       {}},
      {kRefund,
       R"pb(order_id: "ord_1"
            refund_merchant_order_id: "r1"
            refund_amount: "5.0001")pb",
       {"refund_amount"},
       "than any currency allows (at most 3)"},
      // Subscriptions name only the currency.
      {kSub, kCreateSubscriptionRequest, {}},
  };
  for (const ScaleCase& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.rpc, ": ", c.request));
    const RestMethod* rest = Rest(c.rpc);
    ASSERT_NE(rest, nullptr);
    const std::unique_ptr<Message> request =
        FromText(rest->method->input_type(), c.request);
    const absl::Status status = Codec().Validate(*rest, *request);
    if (c.want.empty()) {
      EXPECT_TRUE(status.ok()) << status;
      continue;
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ViolationFields(status), c.want) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.want_message));
  }

  for (const char* code : {"usd", "XYZ", "DEM", "XXX", ""}) {
    SCOPED_TRACE(code);
    auto sub =
        FromText<v1::CreateSubscriptionRequest>(kCreateSubscriptionRequest);
    sub.set_payment_currency(code);
    EXPECT_THAT(ViolationFields(Codec().Validate(
                    *Rest("BillingService.CreateSubscription"), sub)),
                ElementsAre("payment_currency"));
  }
}

// -----------------------------------------------------------------------------
// 3. Validation.

TEST(ValidationTest, MissingRequiredFieldsAreAllNamed) {
  const absl::Status status = Codec().Validate(
      *Rest("PaymentService.CreateRefund"),
      FromText<v1::CreateRefundRequest>(R"pb(order_id: "ord_1")pb"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      ViolationFields(status),
      UnorderedElementsAre("refund_merchant_order_id", "refund_amount"));

  const absl::Status payment = Codec().Validate(
      *Rest("PaymentService.CreatePayment"),
      FromText<v1::CreatePaymentRequest>(R"pb(customer_id: "cus_1"
                                              amount: "1"
                                              currency: "USD")pb"));
  EXPECT_THAT(ViolationFields(payment),
              UnorderedElementsAre("payment_instrument_id",
                                   "payment_method_type", "return_url"));
}

TEST(ValidationTest, MissingRequiredNestedFieldsAreNamedWithTheirPath) {
  auto request =
      FromText<v1::CreateSubscriptionRequest>(kCreateSubscriptionRequest);
  request.mutable_scheduled_phases(1)->clear_price_snapshot_id();
  request.mutable_scheduled_phases(1)->clear_quantity();
  const absl::Status status =
      Codec().Validate(*Rest("BillingService.CreateSubscription"), request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(status),
              UnorderedElementsAre("scheduled_phases[1].price_snapshot_id",
                                   "scheduled_phases[1].quantity"));

  auto checkout =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  checkout.mutable_price_data_list(0)->clear_name();
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *Rest("CheckoutService.CreateCheckoutSession"), checkout)),
              ElementsAre("price_data_list[0].name"));
}

TEST(ValidationTest, EmptyPathParameterIsRejectedByValidateAndEncode) {
  struct Case {
    const char* rpc;
    const char* field;
  };
  for (const Case& c :
       {Case{"PaymentService.GetOrder", "order_id"},
        Case{"PaymentService.RefreshPaymentQrCode", "order_id"},
        Case{"BillingService.GetPrice", "price_id"},
        Case{"CheckoutService.GetCheckoutSession", "session_id"}}) {
    SCOPED_TRACE(c.rpc);
    const RestMethod* rest = Rest(c.rpc);
    ASSERT_NE(rest, nullptr);
    const std::unique_ptr<Message> empty =
        NewMessage(rest->method->input_type());

    const absl::Status valid = Codec().Validate(*rest, *empty);
    EXPECT_EQ(valid.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ViolationFields(valid), ElementsAre(c.field));  // Named once.

    const absl::StatusOr<http::HttpRequest> http =
        Codec().EncodeRequest(*rest, *empty);
    EXPECT_EQ(http.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ViolationFields(http.status()), ElementsAre(c.field));
  }
  // CancelSubscription: the path parameter, not the body's required reason, is
  // what Encode refuses.
  const absl::StatusOr<http::HttpRequest> cancel = Codec().EncodeRequest(
      *Rest("BillingService.CancelSubscription"),
      FromText<v1::CancelSubscriptionRequest>(R"pb(reason: "x")pb"));
  EXPECT_THAT(ViolationFields(cancel.status()), ElementsAre("subscription_id"));
}

TEST(ValidationTest, MaxLengthCountsCharacters) {
  const RestMethod* rest = Rest("PaymentService.CreateRefund");
  ASSERT_NE(rest, nullptr);
  auto request = FromText<v1::CreateRefundRequest>(kCreateRefundRequest);

  request.set_remark(std::string(500, 'x'));
  EXPECT_TRUE(Codec().Validate(*rest, request).ok());
  std::string accented;
  for (int i = 0; i < 500; ++i) accented += "é";  // 1000 bytes, 500 characters.
  request.set_remark(accented);
  EXPECT_TRUE(Codec().Validate(*rest, request).ok())
      << Codec().Validate(*rest, request);

  request.set_remark(std::string(501, 'x'));
  const absl::Status status = Codec().Validate(*rest, request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(status), ElementsAre("remark"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("at most 500"));

  auto cancel =
      FromText<v1::CancelSubscriptionRequest>(kCancelSubscriptionRequest);
  cancel.set_reason(std::string(256, 'r'));
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *Rest("BillingService.CancelSubscription"), cancel)),
              ElementsAre("reason"));
}

TEST(ValidationTest, UnspecifiedInARepeatedEnumIsNamedByIndex) {
  auto request =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  request.add_payment_method_type_black_list(
      v1::PAYMENT_METHOD_TYPE_UNSPECIFIED);
  const absl::Status status =
      Codec().Validate(*Rest("CheckoutService.CreateCheckoutSession"), request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(status),
              ElementsAre("payment_method_type_black_list[2]"));
}

TEST(ValidationTest, IntegerBounds) {
  const RestMethod* rest = Rest("PaymentService.ListOrders");
  ASSERT_NE(rest, nullptr);
  // 0 is "not set" (Clink's default), so the minimum does not apply to it.
  EXPECT_TRUE(Codec().Validate(*rest, v1::ListOrdersRequest()).ok());
  EXPECT_TRUE(Codec()
                  .Validate(*rest, FromText<v1::ListOrdersRequest>(
                                       "page_num: 1 page_size: 50"))
                  .ok());
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *rest, FromText<v1::ListOrdersRequest>("page_size: 51"))),
              ElementsAre("page_size"));
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *rest, FromText<v1::ListOrdersRequest>("page_num: -1"))),
              ElementsAre("page_num"));

  auto checkout =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  checkout.mutable_price_data_list(1)->set_quantity(-2);
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *Rest("CheckoutService.CreateCheckoutSession"), checkout)),
              ElementsAre("price_data_list[1].quantity"));
}

TEST(ValidationTest, WebhookUrlsEventNamesAndListSizes) {
  const RestMethod* rest = Rest("WebhookService.CreateWebhookEndpoint");
  ASSERT_NE(rest, nullptr);
  auto valid = [&](const std::string& text) {
    return Codec()
        .Validate(*rest, FromText<v1::CreateWebhookEndpointRequest>(text))
        .ok();
  };
  EXPECT_TRUE(valid(R"pb(url: "https://shop.example.com:8443/h?x=1"
                         events: "order.succeeded"
                         events: "subscription.updated.plan_changed"
                         events: "vic_device.binding_succeeded")pb"));
  EXPECT_TRUE(valid(R"pb(url: "HTTPS://Shop.Example.com" events: "a")pb"));
  for (const char* url :
       {"http://shop.example.com/h", "https://", "https:///path",
        "https://:443/", "https://shop.example.com/a b", "ftp://x",
        "https://shop.example.com/\\x7f", "shop.example.com"}) {
    EXPECT_THAT(ViolationFields(Codec().Validate(
                    *rest, FromText<v1::CreateWebhookEndpointRequest>(
                               absl::StrCat("url: \"", url,
                                            "\" events: \"order.failed\"")))),
                ElementsAre("url"))
        << url;
  }
  for (const char* event : {"2", "Order.succeeded", "order..succeeded",
                            ".order", "order.", "order.succeeded ", "",
                            "order.1x", "order-succeeded"}) {
    EXPECT_THAT(
        ViolationFields(Codec().Validate(
            *rest, FromText<v1::CreateWebhookEndpointRequest>(absl::StrCat(
                       "url: \"https://a.example\" events: \"order.failed\" "
                       "events: \"",
                       event, "\"")))),
        ElementsAre("events[1]"))
        << event;
  }
  EXPECT_THAT(ViolationFields(Codec().Validate(
                  *rest, FromText<v1::CreateWebhookEndpointRequest>(
                             absl::StrCat("url: \"https://a.example\" events: \"",
                                          std::string(65, 'a'), "\"")))),
              ElementsAre("events[0]"));
  v1::CreateWebhookEndpointRequest many;
  many.set_url("https://a.example");
  for (int i = 0; i < 101; ++i) many.add_events("order.failed");
  EXPECT_THAT(ViolationFields(Codec().Validate(*rest, many)),
              ElementsAre("events"));
  many.mutable_events()->RemoveLast();
  EXPECT_TRUE(Codec().Validate(*rest, many).ok());
}

// PATCH sends exactly the fields the caller set: proto3 `optional` tells an
// empty description (clear it) or `enabled: false` from "leave it".
TEST(EncodeTest, PatchSendsOnlyPresentFields) {
  const RestMethod* rest = Rest("WebhookService.UpdateWebhookEndpoint");
  ASSERT_NE(rest, nullptr);
  v1::UpdateWebhookEndpointRequest request;
  request.set_endpoint_id("whk_1");
  absl::StatusOr<http::HttpRequest> http = Codec().EncodeRequest(*rest, request);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->method, http::Method::kPatch);
  EXPECT_EQ(http->body, "{}");
  request.set_enabled(false);
  request.set_description("");
  http = Codec().EncodeRequest(*rest, request);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(CanonicalJson(http->body),
            CanonicalJson(R"({"description":"","enabled":false})"));
  // A present but empty url is not "unchanged": it is refused.
  request.set_url("");
  EXPECT_THAT(ViolationFields(Codec().Validate(*rest, request)),
              ElementsAre("url"));
}

TEST(ValidationTest, EveryViolationIsReportedAtOnce) {
  auto request =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  request.clear_original_currency();
  request.set_original_amount("1e3");
  request.mutable_price_data_list(0)->set_unit_amount("0");
  const absl::Status status =
      Codec().Validate(*Rest("CheckoutService.CreateCheckoutSession"), request);
  EXPECT_THAT(ViolationFields(status),
              UnorderedElementsAre("original_amount", "original_currency",
                                   "price_data_list[0].unit_amount"));
}

// -----------------------------------------------------------------------------
// Paths and query strings.

// Every path parameter of every RPC (from the compiled methods, no list here).
struct PathParameter {
  const RestMethod* rest;
  const google::protobuf::FieldDescriptor* field;
};

std::vector<PathParameter> AllPathParameters() {
  std::vector<PathParameter> out;
  for (const RestMethod* rest : Codec().methods()) {
    for (const PathSegment& segment : rest->path) {
      if (segment.field != nullptr) out.push_back({rest, segment.field});
    }
  }
  return out;
}

// The template's path with each {field} replaced by `value`.
std::string ExpectedPath(const RestMethod& rest, const std::string& value) {
  std::string path;
  for (const PathSegment& segment : rest.path) {
    path += segment.field == nullptr ? segment.literal : value;
  }
  return path;
}

TEST(EncodeTest, ClinkIdsAreSentVerbatimInTheTemplatesPath) {
  const std::vector<PathParameter> params = AllPathParameters();
  ASSERT_GE(params.size(), 9u);  // Every Get*, Cancel*, Refresh* RPC.
  for (const PathParameter& p : params) {
    for (const std::string& id : std::vector<std::string>{
             "sess_abc123xyz", "order_def456uvw", "ord_clink_1", "a.b", "x~y-z",
             std::string(255, 'a')}) {
      SCOPED_TRACE(absl::StrCat(p.rest->endpoint, " ", id));
      std::unique_ptr<Message> request =
          NewMessage(p.rest->method->input_type());
      request->GetReflection()->SetString(request.get(), p.field, id);
      const absl::StatusOr<http::HttpRequest> http =
          Codec().EncodeRequest(*p.rest, *request);
      ASSERT_TRUE(http.ok()) << http.status();
      const std::string path =
          http->path_and_query.substr(0, http->path_and_query.find('?'));
      EXPECT_EQ(path, ExpectedPath(*p.rest, id));
      const absl::Status valid = Codec().Validate(*p.rest, *request);
      EXPECT_THAT(ViolationFields(valid),
                  ::testing::Not(::testing::Contains(p.field->name())))
          << valid;
    }
  }
}

// Values a server or libcurl could resolve to another path: dot segments (also
// percent-encoded, any case), separators, escapes, and anything not an id.
TEST(ValidationTest, PathParametersThatCouldChangeThePathAreRefused) {
  const std::vector<std::string> hostile = {".",
                                            "..",
                                            "...",
                                            "%2e",
                                            "%2E",
                                            "%2e%2e",
                                            "%2E%2e",
                                            ".%2e",
                                            "%2E.",
                                            "%252e",
                                            "a/b",
                                            "../x",
                                            "..%2f",
                                            "a\\b",
                                            "..\\",
                                            "a;b",
                                            "a?b",
                                            "a#b",
                                            "a%2Fb",
                                            "a b",
                                            "caf\xC3\xA9",
                                            "a\nb",
                                            std::string(1, '\0'),
                                            std::string(256, 'a')};
  for (const PathParameter& p : AllPathParameters()) {
    for (const std::string& value : hostile) {
      SCOPED_TRACE(
          absl::StrCat(p.rest->endpoint, " ", absl::CHexEscape(value)));
      std::unique_ptr<Message> request =
          NewMessage(p.rest->method->input_type());
      request->GetReflection()->SetString(request.get(), p.field, value);

      const absl::Status valid = Codec().Validate(*p.rest, *request);
      EXPECT_EQ(valid.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(ViolationFields(valid), ::testing::Contains(p.field->name()));

      const absl::StatusOr<http::HttpRequest> http =
          Codec().EncodeRequest(*p.rest, *request);
      EXPECT_EQ(http.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(ViolationFields(http.status()), ElementsAre(p.field->name()));
    }
  }
}

TEST(EncodeTest,
     QueryParametersInFieldNumberOrderWithClinkNamesAndEncodedValues) {
  const absl::StatusOr<http::HttpRequest> http = Codec().EncodeRequest(
      *Rest("PaymentService.ListOrders"),
      FromText<v1::ListOrdersRequest>(R"pb(page_size: 10
                                           customer_id: "cus a&b=c/é"
                                           page_num: 3)pb"));
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->path_and_query,
            "/order?customerId=cus%20a%26b%3Dc%2F%C3%A9&pageNum=3&pageSize=10");
}

TEST(EncodeTest,
     OptionalBoolQueryParameterIsSentWhenSetToFalseAndOmittedWhenUnset) {
  const RestMethod* rest = Rest("BillingService.ListPrices");
  ASSERT_NE(rest, nullptr);
  const absl::StatusOr<http::HttpRequest> inactive = Codec().EncodeRequest(
      *rest, FromText<v1::ListPricesRequest>(R"pb(active: false
                                                  product_id: "prd_1")pb"));
  ASSERT_TRUE(inactive.ok()) << inactive.status();
  EXPECT_EQ(inactive->path_and_query, "/price?productId=prd_1&active=false");

  const absl::StatusOr<http::HttpRequest> any = Codec().EncodeRequest(
      *rest, FromText<v1::ListPricesRequest>(R"pb(product_id: "prd_1")pb"));
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->path_and_query, "/price?productId=prd_1");

  const absl::StatusOr<http::HttpRequest> none = Codec().EncodeRequest(
      *Rest("BillingService.ListProducts"), v1::ListProductsRequest());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->path_and_query, "/product");
}

// -----------------------------------------------------------------------------
// 4. Enums.

TEST(EnumTest, StringWireValuesWhenEncoding) {
  auto request =
      FromText<v1::CreateCheckoutSessionRequest>(kCreateCheckoutSessionRequest);
  request.set_ui_mode(v1::UI_MODE_ELEMENTS);
  request.set_return_url(
      "https://merchant.example.com/complete?session_id={ELEMENTS_SESSION_ID}");
  const absl::StatusOr<http::HttpRequest> http = Codec().EncodeRequest(
      *Rest("CheckoutService.CreateCheckoutSession"), request);
  ASSERT_TRUE(http.ok()) << http.status();
  Json body;
  ASSERT_TRUE(ParseJson(http->body, &body));
  ASSERT_NE(body.Find("uiMode"), nullptr);
  EXPECT_EQ(body.Find("uiMode")->kind, Json::kString);
  EXPECT_EQ(body.Find("uiMode")->text, "elements");

  // UNSPECIFIED is never sent.
  request.clear_ui_mode();
  request.clear_payment_method_type();
  const absl::StatusOr<http::HttpRequest> unset = Codec().EncodeRequest(
      *Rest("CheckoutService.CreateCheckoutSession"), request);
  ASSERT_TRUE(unset.ok()) << unset.status();
  ASSERT_TRUE(ParseJson(unset->body, &body));
  EXPECT_EQ(body.Find("uiMode"), nullptr);
  EXPECT_EQ(body.Find("paymentMethodType"), nullptr);
}

TEST(EnumTest, NumericRefundReasonTypeIsAJsonNumberFromZero) {
  const RestMethod* rest = Rest("PaymentService.CreateRefund");
  ASSERT_NE(rest, nullptr);
  const std::pair<v1::RefundReasonType, const char*> cases[] = {
      {v1::REFUND_REASON_TYPE_DUPLICATE_PAYMENT, "0"},
      {v1::REFUND_REASON_TYPE_FRAUDULENT_ACTIVITY, "1"},
      {v1::REFUND_REASON_TYPE_CUSTOMER_INITIATED, "2"},
      {v1::REFUND_REASON_TYPE_OTHER, "3"},
  };
  for (const auto& [reason, wire] : cases) {
    SCOPED_TRACE(wire);
    auto request = FromText<v1::CreateRefundRequest>(kCreateRefundRequest);
    request.set_refund_reason_type(reason);
    const absl::StatusOr<http::HttpRequest> http =
        Codec().EncodeRequest(*rest, request);
    ASSERT_TRUE(http.ok()) << http.status();
    Json body;
    ASSERT_TRUE(ParseJson(http->body, &body));
    const Json* sent = body.Find("refundReasonType");
    ASSERT_NE(sent, nullptr);
    EXPECT_EQ(sent->kind, Json::kNumber);
    EXPECT_EQ(sent->text, wire);
  }
  auto request = FromText<v1::CreateRefundRequest>(kCreateRefundRequest);
  request.clear_refund_reason_type();
  const absl::StatusOr<http::HttpRequest> http =
      Codec().EncodeRequest(*rest, request);
  ASSERT_TRUE(http.ok());
  EXPECT_THAT(http->body, ::testing::Not(HasSubstr("refundReasonType")));
}

TEST(EnumTest, NumericPaymentResultStatusIsDecoded) {
  const std::pair<const char*, v1::PaymentResultStatus> cases[] = {
      {"1", v1::PAYMENT_RESULT_STATUS_SUCCESS},
      {"2", v1::PAYMENT_RESULT_STATUS_PENDING},
      {"3", v1::PAYMENT_RESULT_STATUS_FAILURE},
      {"5", v1::PAYMENT_RESULT_STATUS_NEXT_ACTION},
  };
  for (const auto& [wire, status] : cases) {
    SCOPED_TRACE(wire);
    const Decoded got = Decode("PaymentService.CreatePayment",
                               Ok(absl::StrCat(R"({"status":)", wire, "}")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(
        static_cast<const v1::CreatePaymentResponse&>(*got.response).status(),
        status);
    EXPECT_EQ(got.stats.unknown_fields, 0);
  }
}

TEST(EnumTest, EveryOrderStatusWireValueDecodes) {
  const google::protobuf::EnumDescriptor* e = v1::OrderStatus_descriptor();
  for (int i = 1; i < e->value_count(); ++i) {
    const std::string& wire =
        e->value(i)->options().GetExtension(v1::wire_value);
    SCOPED_TRACE(wire);
    const Decoded got =
        Decode("PaymentService.GetOrder",
               Ok(absl::StrCat(R"({"status":")", wire, R"("})")));
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(static_cast<const v1::GetOrderResponse&>(*got.response)
                  .order()
                  .status(),
              e->value(i)->number());
  }
  const Decoded partial =
      Decode("PaymentService.GetOrder", Ok(R"({"status":"partial_refunded"})"));
  EXPECT_EQ(static_cast<const v1::GetOrderResponse&>(*partial.response)
                .order()
                .status(),
            v1::ORDER_STATUS_PARTIAL_REFUNDED);
}

TEST(EnumTest, UnknownEnumValueIsToleratedLeftUnsetAndCounted) {
  const Decoded order =
      Decode("PaymentService.GetOrder",
             Ok(R"({"orderId":"ord_1","status":"disputed","type":"onetime"})"));
  ASSERT_TRUE(order.status.ok()) << order.status;
  const auto& o =
      static_cast<const v1::GetOrderResponse&>(*order.response).order();
  EXPECT_EQ(o.status(), v1::ORDER_STATUS_UNSPECIFIED);
  EXPECT_EQ(o.order_id(), "ord_1");
  EXPECT_EQ(o.type(), v1::ORDER_TYPE_ONETIME);
  EXPECT_EQ(order.stats.unknown_fields, 1);
  EXPECT_THAT(order.stats.unknown_examples, ElementsAre("data.status"));

  // A numeric enum with a number Clink has not documented, and a
  // case-mismatched string.
  const Decoded payment =
      Decode("PaymentService.CreatePayment", Ok(R"({"status":4})"));
  EXPECT_EQ(
      static_cast<const v1::CreatePaymentResponse&>(*payment.response).status(),
      v1::PAYMENT_RESULT_STATUS_UNSPECIFIED);
  EXPECT_EQ(payment.stats.unknown_fields, 1);
  const Decoded session = Decode("CheckoutService.GetCheckoutSession",
                                 Ok(R"({"uiMode":"HOSTED_PAGE"})"));
  EXPECT_EQ(
      static_cast<const v1::GetCheckoutSessionResponse&>(*session.response)
          .checkout_session()
          .ui_mode(),
      v1::UI_MODE_UNSPECIFIED);
  EXPECT_THAT(session.stats.unknown_examples, ElementsAre("data.uiMode"));
}

// -----------------------------------------------------------------------------
// 5. Times.

struct TimeCase {
  const char* name;
  const char* rpc;
  std::string body;
  const char* want;  // Expected response, text proto.
};

class TimeTest : public ::testing::TestWithParam<TimeCase> {};

TEST_P(TimeTest, DecodesToTheExactInstant) {
  const TimeCase& c = GetParam();
  const Decoded got = Decode(c.rpc, c.body);
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 0)
      << absl::StrJoin(got.stats.unknown_examples, ", ");
  EXPECT_TRUE(ProtoEquals(*FromText(got.response->GetDescriptor(), c.want),
                          *got.response));
}

INSTANTIATE_TEST_SUITE_P(
    Encodings, TimeTest,
    ::testing::Values(
        TimeCase{
            "unix_millis", "PaymentService.GetOrder",
            Ok(R"({"createTime":1754819711382})"),
            "order { create_time { seconds: 1754819711 nanos: 382000000 } }"},
        TimeCase{"unix_millis_whole_second", "PaymentService.GetOrder",
                 Ok(R"({"paymentTime":1754819711000})"),
                 "order { payment_time { seconds: 1754819711 } }"},
        TimeCase{
            "iso_utc_z", "PaymentService.GetAgentPaymentSession",
            Ok(R"({"createTime":"2025-08-10T09:55:11Z"})"),
            "agent_payment_session { create_time { seconds: 1754819711 } }"},
        TimeCase{"iso_fraction_z", "PaymentService.GetAgentPaymentSession",
                 Ok(R"({"createTime":"2025-08-10T09:55:11.382Z"})"),
                 "agent_payment_session { create_time { seconds: 1754819711 "
                 "nanos: 382000000 } }"},
        TimeCase{
            "iso_positive_offset", "PaymentService.GetAgentPaymentSession",
            Ok(R"({"createTime":"2025-08-10T17:55:11+08:00"})"),
            "agent_payment_session { create_time { seconds: 1754819711 } }"},
        TimeCase{"iso_negative_offset", "PaymentService.GetAgentPaymentSession",
                 Ok(R"({"createTime":"2025-08-10T04:55:11.5-05:00"})"),
                 "agent_payment_session { create_time { seconds: 1754819711 "
                 "nanos: 500000000 } }"},
        TimeCase{
            "iso_without_zone_is_utc", "PaymentService.GetAgentPaymentSession",
            Ok(R"({"expireTime":"2025-08-10T09:55:11"})"),
            "agent_payment_session { expire_time { seconds: 1754819711 } }"},
        TimeCase{
            "iso_space_separator", "PaymentService.GetAgentPaymentSession",
            Ok(R"({"expireTime":"2025-08-10 09:55:11"})"),
            "agent_payment_session { expire_time { seconds: 1754819711 } }"},
        TimeCase{
            "unix_seconds", "PaymentService.RefreshPaymentQrCode",
            Ok(R"({"action":{"walletHandleRedirectOrDisplayQrCode":{"expiresAt":1754820011}}})"),
            R"pb(action {
                   wallet_handle_redirect_or_display_qr_code {
                     expires_at { seconds: 1754820011 }
                   }
                 })pb"}),
    [](const ::testing::TestParamInfo<TimeCase>& info) {
      return std::string(info.param.name);
    });

TEST(TimeEncodingTest, UnparseableTimesAreCountedAndLeftUnset) {
  const Decoded iso = Decode(
      "PaymentService.GetAgentPaymentSession",
      Ok(R"({"createTime":"10/08/2025 09:55","expireTime":1754819711})"));
  ASSERT_TRUE(iso.status.ok()) << iso.status;
  const auto& session =
      static_cast<const v1::GetAgentPaymentSessionResponse&>(*iso.response)
          .agent_payment_session();
  EXPECT_FALSE(session.has_create_time());
  EXPECT_FALSE(session.has_expire_time());
  EXPECT_EQ(iso.stats.unknown_fields, 2);
  EXPECT_THAT(iso.stats.unknown_examples,
              ElementsAre("data.createTime", "data.expireTime"));

  const Decoded millis = Decode("PaymentService.GetOrder",
                                Ok(R"({"createTime":"2025-08-10T09:55:11Z"})"));
  EXPECT_FALSE(static_cast<const v1::GetOrderResponse&>(*millis.response)
                   .order()
                   .has_create_time());
  EXPECT_THAT(millis.stats.unknown_examples, ElementsAre("data.createTime"));
}

TEST(TimeEncodingTest, EncoderWritesEachTimeEncoding) {
  v1::Order order;
  order.mutable_create_time()->set_seconds(1754819711);
  order.mutable_create_time()->set_nanos(382000000);
  EXPECT_EQ(*Codec().MessageToClinkJson(order),
            R"({"createTime":1754819711382})");

  v1::WalletHandleRedirectOrDisplayQrCode qr;
  qr.mutable_expires_at()->set_seconds(1754820011);
  EXPECT_EQ(*Codec().MessageToClinkJson(qr), R"({"expiresAt":1754820011})");

  v1::AgentPaymentSession session;
  session.mutable_create_time()->set_seconds(1754819711);
  session.mutable_create_time()->set_nanos(382000000);
  EXPECT_EQ(*Codec().MessageToClinkJson(session),
            R"({"createTime":"2025-08-10T09:55:11.382Z"})");
}

// -----------------------------------------------------------------------------
// 6. Envelopes and drift.

TEST(EnvelopeTest, ListShapeFillsRowsAndTotal) {
  const Decoded empty =
      Decode("BillingService.ListProducts",
             R"({"total":0,"rows":[],"code":200,"msg":"success"})");
  ASSERT_TRUE(empty.status.ok()) << empty.status;
  EXPECT_TRUE(ProtoEquals(v1::ListProductsResponse(), *empty.response));

  const Decoded page = Decode(
      "BillingService.ListProducts",
      R"({"total":41,"rows":[{"productId":"prd_a"},{"productId":"prd_b"}],)"
      R"("code":200,"msg":"success"})");
  ASSERT_TRUE(page.status.ok()) << page.status;
  EXPECT_TRUE(ProtoEquals(FromText<v1::ListProductsResponse>(
                              R"pb(products { product_id: "prd_a" }
                                   products { product_id: "prd_b" }
                                   total: 41)pb"),
                          *page.response));
  EXPECT_EQ(page.stats.unknown_fields, 0);
}

// GET /subscription/test-clocks/list and GET /promotion-code/coupon/{id}
// answer `{code, msg, data: [...]}`.
TEST(EnvelopeTest, ArrayShapeFillsTheRepeatedFieldFromData) {
  Decoded got =
      Decode("TestClockService.ListTestClocks",
             Ok(R"([{"clockId":"clock_1","frozenTime":1754611200000},"junk",)"
                R"({"clockId":"clock_2","status":"READY"}])"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_FALSE(got.envelope.payload_missing);
  EXPECT_EQ(got.stats.unknown_fields, 1);  // "junk" is not a clock.
  EXPECT_TRUE(ProtoEquals(FromText<v1::ListTestClocksResponse>(R"pb(
                            test_clocks {
                              clock_id: "clock_1"
                              frozen_time { seconds: 1754611200 }
                            }
                            test_clocks {
                              clock_id: "clock_2"
                              status: TEST_CLOCK_STATUS_READY
                            })pb"),
                          *got.response));

  got = Decode("CouponService.ListPromotionCodes", Ok("[]"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_FALSE(got.envelope.payload_missing);
  EXPECT_EQ(got.response->ByteSizeLong(), 0u);

  // An object where the array belongs, or no data at all, is no answer.
  for (const std::string& body :
       {Ok(R"({"clockId":"clock_1"})"),
        std::string(R"({"code":200,"msg":"success"})"), Ok("null")}) {
    got = Decode("TestClockService.ListTestClocks", body);
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_TRUE(got.envelope.payload_missing) << body;
  }
}

// fixedAmounts / minimumSpend: currency code -> amount, both ways exact.
TEST(MoneyTest, DecimalMapValuesAreJsonNumbersWithTheCallersDigits) {
  const RestMethod* rest = Rest("CouponService.CreatePromotionCode");
  ASSERT_NE(rest, nullptr);
  const auto request = FromText<v1::CreatePromotionCodeRequest>(R"pb(
    coupon_id: "coupon_1"
    minimum_spend { key: "USD" value: "10.10" }
    minimum_spend { key: "JPY" value: "12345678901234567890" }
  )pb");
  ASSERT_TRUE(Codec().Validate(*rest, request).ok())
      << Codec().Validate(*rest, request);
  const absl::StatusOr<http::HttpRequest> http =
      Codec().EncodeRequest(*rest, request);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_THAT(http->body, HasSubstr(R"("USD":10.10)"));
  EXPECT_THAT(http->body, HasSubstr(R"("JPY":12345678901234567890)"));

  const Decoded got = Decode(
      "CouponService.GetPromotionCode",
      Ok(R"({"minimumSpend":{"USD":1E+1,"EUR":9.990,"GBP":"x","AUD":true}})"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unreadable_amounts, 2);  // "x" and true.
  EXPECT_TRUE(ProtoEquals(FromText<v1::GetPromotionCodeResponse>(R"pb(
                            promotion_code {
                              minimum_spend { key: "USD" value: "10" }
                              minimum_spend { key: "EUR" value: "9.990" }
                            })pb"),
                          *got.response));
}

TEST(MoneyTest, DecimalMapEntriesAreValidatedAndNamedByKey) {
  const RestMethod* rest = Rest("CouponService.CreateCoupon");
  ASSERT_NE(rest, nullptr);
  const auto request = FromText<v1::CreateCouponRequest>(R"pb(
    coupon_name: "Loyalty"
    discount_type: DISCOUNT_TYPE_FIXED_AMOUNT
    apply_type: COUPON_APPLY_TYPE_NONE
    duration_type: COUPON_DURATION_ONCE
    fixed_amounts { key: "USD" value: "5.00" }
    fixed_amounts { key: "usd" value: "5" }
    fixed_amounts { key: "XYZ" value: "5" }
    fixed_amounts { key: "JPY" value: "5.5" }
    fixed_amounts { key: "EUR" value: "0" }
    fixed_amounts { key: "GBP" value: "1e3" }
    promotion_codes { minimum_spend { key: "KWD" value: "1.0001" } }
  )pb");
  const absl::Status status = Codec().Validate(*rest, request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      ViolationFields(status),
      UnorderedElementsAre(R"(fixed_amounts["usd"])", R"(fixed_amounts["XYZ"])",
                           R"(fixed_amounts["JPY"])", R"(fixed_amounts["EUR"])",
                           R"(fixed_amounts["GBP"])",
                           R"(promotion_codes[0].minimum_spend["KWD"])"));

  // A key that is not short plain text is named by its index, never echoed.
  auto hostile = FromText<v1::CreateCouponRequest>(R"pb(
    coupon_name: "Loyalty"
    discount_type: DISCOUNT_TYPE_FIXED_AMOUNT
    apply_type: COUPON_APPLY_TYPE_NONE
    duration_type: COUPON_DURATION_ONCE
  )pb");
  (*hostile.mutable_fixed_amounts())[std::string(100000, 'X') + "\"]"] = "5";
  EXPECT_THAT(ViolationFields(Codec().Validate(*rest, hostile)),
              ElementsAre("fixed_amounts[0]"));
}

TEST(EnvelopeTest, ObjectShapeWithNullOrMissingData) {
  for (const std::string& body :
       {std::string(R"({"code":200,"msg":"success","data":null})"),
        std::string(R"({"code":200,"msg":"success"})")}) {
    SCOPED_TRACE(body);
    const Decoded got = Decode("BillingService.CancelSubscription", body);
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_TRUE(got.envelope.has_code);
    EXPECT_EQ(got.envelope.code, 200);
    EXPECT_FALSE(
        static_cast<const v1::CancelSubscriptionResponse&>(*got.response)
            .has_subscription());
    EXPECT_EQ(got.stats.unknown_fields, 0);
  }
}

TEST(EnvelopeTest, ErrorCodeReturnsTheEnvelopeAndLeavesTheResponseUntouched) {
  const RestMethod* rest = Rest("PaymentService.GetOrder");
  ASSERT_NE(rest, nullptr);
  for (
      const auto& [body, code, msg] :
      {std::make_tuple(
           std::string(
               R"({"code":500,"msg":"Internal error","data":{"orderId":"ord_x"}})"),
           int64_t{500}, std::string("Internal error")),
       std::make_tuple(
           std::string(
               R"({"code":80102203,"msg":"request timestamp invalid","data":null})"),
           int64_t{80102203}, std::string("request timestamp invalid")),
       std::make_tuple(
           std::string(R"({"msg":"CUSTOMER_NOT_FOUND","code":400})"),
           int64_t{400}, std::string("CUSTOMER_NOT_FOUND"))}) {
    SCOPED_TRACE(body);
    auto response =
        FromText<v1::GetOrderResponse>(R"pb(order { order_id: "before" })pb");
    const v1::GetOrderResponse before = response;
    Envelope envelope;
    DecodeStats stats;
    const absl::Status status =
        Codec().DecodeResponse(*rest, body, &response, &envelope, &stats);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(envelope.has_code);
    EXPECT_EQ(envelope.code, code);
    EXPECT_EQ(envelope.msg, msg);
    EXPECT_TRUE(ProtoEquals(before, response));
    EXPECT_EQ(stats.unknown_fields, 0);
  }
}

TEST(EnvelopeTest, BodyThatIsNotAJsonObjectIsInternal) {
  for (const std::string& body :
       {std::string(""), std::string("Unauthorized"),
        std::string("<html>502 Bad Gateway</html>"), std::string("[1,2]"),
        std::string("\"ok\""), std::string("null"), std::string("200"),
        std::string(R"({"code":200,"msg":"success")"),
        std::string(R"({"code":200} trailing)"),
        std::string("{\"code\":200,\"msg\":\"\xff\xfe\"}"),  // Invalid UTF-8.
        std::string(R"({"code":"OK","msg":"success"})"),  // Non-integer code.
        std::string(R"({"error":"gateway timeout","status":504})")}) {
    SCOPED_TRACE(body);
    const Decoded got = Decode("PaymentService.GetOrder", body);
    EXPECT_EQ(got.status.code(), absl::StatusCode::kInternal);
    EXPECT_THAT(std::string(got.status.message()),
                HasSubstr("GET /order/{order_id}"));
    // Never the body itself (it may hold customer data).
    if (body.size() > 8) {
      EXPECT_THAT(std::string(got.status.message()),
                  ::testing::Not(HasSubstr(body)));
    }
  }
}

// Raw ill-formed UTF-8 anywhere in the body (after a long ASCII run, inside a
// long string, at the very end) refuses the whole body; well-formed multi-byte
// characters at any offset are kept as sent.
TEST(EnvelopeTest, IllFormedUtf8AnywhereInTheBodyIsInternal) {
  const std::string pad(37, 'a');  // odd length: sequences at every alignment
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc3"),         // stray / truncated
        std::string("\xc0\xaf"),                          // overlong '/'
        std::string("\xed\xa0\x80"),                      // raw surrogate
        std::string("\xf4\x90\x80\x80"),                  // past U+10FFFF
        std::string("\xe2\x82")}) {                       // truncated 3-byte
    for (size_t at = 0; at < 9; ++at) {
      const std::string body = absl::StrCat(
          R"({"code":200,"msg":"success","data":{"orderId":")",
          pad.substr(0, at), bad, pad, R"("}})");
      SCOPED_TRACE(absl::StrCat(at, " ", absl::CHexEscape(bad)));
      EXPECT_EQ(Decode("PaymentService.GetOrder", body).status.code(),
                absl::StatusCode::kInternal);
    }
  }
  const std::string good = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";  // é € 😀
  for (size_t at = 0; at < 9; ++at) {
    const std::string id = absl::StrCat(pad.substr(0, at), good, pad, good);
    const Decoded got = Decode(
        "PaymentService.GetOrder",
        absl::StrCat(R"({"code":200,"msg":"success","data":{"orderId":")", id,
                     R"("}})"));
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(static_cast<const v1::GetOrderResponse&>(*got.response)
                  .order()
                  .order_id(),
              id);
    EXPECT_EQ(got.stats.unreadable_strings, 0);
  }
}

TEST(EnvelopeTest, SuccessWithAPayloadOfTheWrongTypeIsIncomplete) {
  // Clink said 200, so the request took effect; the payload is unusable.
  for (const std::string& body :
       {std::string(R"({"code":200,"msg":"success","data":[1]})"),
        std::string(R"({"code":200,"msg":"success","data":"ord_1"})")}) {
    SCOPED_TRACE(body);
    const Decoded got = Decode("PaymentService.GetOrder", body);
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_TRUE(got.envelope.payload_missing);
  }
  const Decoded rows =
      Decode("PaymentService.ListOrders",
             R"({"total":1,"rows":{"orderId":"x"},"code":200})");
  ASSERT_TRUE(rows.status.ok()) << rows.status;
  EXPECT_TRUE(rows.envelope.payload_missing);
}

TEST(EnvelopeTest, BareBodyMustLookLikeTheResource) {
  // GetProduct may answer unwrapped, but an object with none of the product's
  // fields is no product.
  const Decoded got =
      Decode("BillingService.GetProduct", R"({"error":"gateway timeout"})");
  EXPECT_EQ(got.status.code(), absl::StatusCode::kInternal);
}

TEST(EnvelopeTest, UnknownMembersAreToleratedAndCounted) {
  const Decoded got = Decode("PaymentService.GetOrder", Ok(R"({
      "orderId": "ord_1",
      "newField": {"deep": [1, 2]},
      "paymentMethod": {"paymentMethodType": "CARD", "network": "visa"},
      "priceDataList": [{"name": "a", "unitAmount": 1, "taxCode": "txcd_1"}],
      "amountTotal": 2.50
    })"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 3);
  EXPECT_THAT(got.stats.unknown_examples,
              ElementsAre("data.newField", "data.paymentMethod.network",
                          "data.priceDataList[0].taxCode"));
  EXPECT_TRUE(ProtoEquals(FromText<v1::GetOrderResponse>(R"pb(
                            order {
                              order_id: "ord_1"
                              payment_method { payment_method_type: "CARD" }
                              price_data_list { name: "a" unit_amount: "1" }
                              amount_total: "2.50"
                            })pb"),
                          *got.response));

  // Top level of the envelope, and list rows.
  const Decoded list = Decode(
      "PaymentService.ListOrders",
      R"({"total":1,"rows":[{"orderId":"o","extra":1}],"code":200,"msg":"success","requestId":"r1"})");
  ASSERT_TRUE(list.status.ok()) << list.status;
  EXPECT_EQ(list.stats.unknown_fields, 2);
  EXPECT_THAT(list.stats.unknown_examples,
              UnorderedElementsAre("rows[0].extra", "requestId"));
  EXPECT_EQ(static_cast<const v1::ListOrdersResponse&>(*list.response)
                .orders(0)
                .order_id(),
            "o");

  // Type drift: a value that does not fit its field is counted like an
  // unknown member.
  const Decoded drift = Decode(
      "PaymentService.GetOrder",
      Ok(R"({"orderId":{"id":"x"},"priceDataList":{"name":"a"},)"
         R"("paymentExecutionDetails":[null,"x",{"channelCode":"C"}]})"));
  ASSERT_TRUE(drift.status.ok()) << drift.status;
  EXPECT_EQ(drift.stats.unknown_fields, 4);
  const auto& order =
      static_cast<const v1::GetOrderResponse&>(*drift.response).order();
  EXPECT_EQ(order.order_id(), "");
  ASSERT_EQ(order.payment_execution_details_size(), 1);
  EXPECT_EQ(order.payment_execution_details(0).channel_code(), "C");
}

TEST(EnvelopeTest, UnknownExamplesAreCappedButEveryUnknownIsCounted) {
  const Decoded got =
      Decode("PaymentService.GetOrder",
             Ok(R"({"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"orderId":"o"})"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 6);
  EXPECT_THAT(got.stats.unknown_examples,
              ElementsAre("data.a", "data.b", "data.c", "data.d"));
}

TEST(EnvelopeTest, RefundMetadataAsAJsonEncodedString) {
  const Decoded got = Decode(
      "PaymentService.GetRefund",
      Ok(R"({"refundId":"rfd_1","metadata":"{\"arn\":\"8377252556170253\",\"n\":7}"})"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 0);
  EXPECT_TRUE(ProtoEquals(FromText<v1::GetRefundResponse>(R"pb(
                            refund {
                              refund_id: "rfd_1"
                              metadata { key: "arn" value: "8377252556170253" }
                              metadata { key: "n" value: "7" }
                            })pb"),
                          *got.response));

  const Decoded empty =
      Decode("PaymentService.GetRefund", Ok(R"({"metadata":""})"));
  EXPECT_EQ(empty.stats.unknown_fields, 0);
  EXPECT_EQ(static_cast<const v1::GetRefundResponse&>(*empty.response)
                .refund()
                .metadata_size(),
            0);

  const Decoded garbage =
      Decode("PaymentService.GetRefund", Ok(R"({"metadata":"arn=1"})"));
  EXPECT_EQ(garbage.stats.unknown_fields, 1);
  EXPECT_THAT(garbage.stats.unknown_examples, ElementsAre("data.metadata"));
}

TEST(EnvelopeTest, MetadataValuesThatAreNotStringsKeepTheirJsonText) {
  const Decoded got = Decode(
      "PaymentService.GetOrder",
      Ok(R"({"metadata":{"cartId":42,"weight":1.50,"big":9007199254740993,"gift":true,)"
         R"("tags":{"a":"b"},"none":null,"s":"x"}})"));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.stats.unknown_fields, 0);
  EXPECT_TRUE(ProtoEquals(FromText<v1::GetOrderResponse>(R"pb(
                            order {
                              metadata { key: "cartId" value: "42" }
                              metadata { key: "weight" value: "1.50" }
                              metadata { key: "big" value: "9007199254740993" }
                              metadata { key: "gift" value: "true" }
                              metadata { key: "tags" value: "{\"a\":\"b\"}" }
                              metadata { key: "s" value: "x" }
                            })pb"),
                          *got.response));
}

// -----------------------------------------------------------------------------
// 7. Create() rejects broken annotations.

// A one-RPC file depending on the real rest_options.proto, with pieces
// swapped per case.
struct BrokenCase {
  std::string name;
  std::string request_fields;   // Extra fields of message Req (which has
                                // `string id = 1`).
  std::string response_fields;  // Extra fields of message Resp (which has
                                // `string name = 1`).
  std::string extra_types;  // Extra top-level message_type / enum_type entries.
  std::string method_options;  // The method's `options { ... }`, or "".
  std::string
      want_error;  // "" for a valid file; else a substring of the error.
};

constexpr char kGoodOptions[] =
    R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" } })";

std::string BrokenFile(const BrokenCase& c) {
  return absl::Substitute(R"pb(
                            name: "broken/broken.proto"
                            package: "broken"
                            syntax: "proto3"
                            dependency: "clink/gateway/v1/rest_options.proto"
                            dependency: "google/protobuf/timestamp.proto"
                            message_type {
                              name: "Req"
                              field {
                                name: "id"
                                number: 1
                                label: LABEL_OPTIONAL
                                type: TYPE_STRING
                              } $0
                            }
                            message_type {
                              name: "Resp"
                              field {
                                name: "name"
                                number: 1
                                label: LABEL_OPTIONAL
                                type: TYPE_STRING
                              } $1
                            } $2
                            service {
                              name: "Things"
                              method {
                                name: "GetThing"
                                input_type: ".broken.Req"
                                output_type: ".broken.Resp" $3
                              }
                            }
                          )pb",
                          c.request_fields, c.response_fields, c.extra_types,
                          c.method_options);
}

class CreateRejectsTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(CreateRejectsTest, BrokenAnnotation) {
  const BrokenCase& c = GetParam();
  // Make sure the generated pool has loaded the files the test file depends
  // on.
  ASSERT_NE(v1::RestRule::descriptor(), nullptr);
  ASSERT_NE(google::protobuf::Timestamp::descriptor(), nullptr);

  FileDescriptorProto file;
  ASSERT_TRUE(TextFormat::ParseFromString(BrokenFile(c), &file))
      << BrokenFile(c);
  DescriptorPool pool(DescriptorPool::generated_pool());
  const google::protobuf::FileDescriptor* built = pool.BuildFile(file);
  ASSERT_NE(built, nullptr) << file.DebugString();

  const absl::StatusOr<std::unique_ptr<RestCodec>> codec =
      RestCodec::Create({built->service(0)});
  if (c.want_error.empty()) {
    ASSERT_TRUE(codec.ok()) << codec.status();
    ASSERT_EQ((*codec)->methods().size(), 1u);
    EXPECT_EQ((*codec)->methods()[0]->endpoint, "GET /things/{id}");
    return;
  }
  EXPECT_EQ(codec.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(codec.status().message()), HasSubstr(c.want_error));
}

constexpr char kInnerMessage[] = R"pb(message_type {
                                        name: "Inner"
                                        field {
                                          name: "weight"
                                          number: 1
                                          label: LABEL_OPTIONAL
                                          type: TYPE_FLOAT
                                        }
                                      })pb";

constexpr char kColorEnum[] =
    R"pb(enum_type {
           name: "Color"
           value { name: "COLOR_UNSPECIFIED" number: 0 }
           value {
             name: "COLOR_RED"
             number: 1
             options {
               [clink.gateway.v1.wire_value]: "red"
             }
           }
           value { name: "COLOR_BLUE" number: 2 $0 }
         })pb";

constexpr char kItemMessage[] = R"pb(message_type {
                                       name: "Item"
                                       field {
                                         name: "label"
                                         number: 1
                                         label: LABEL_OPTIONAL
                                         type: TYPE_STRING
                                       }
                                     })pb";
constexpr char kItemsField[] = R"pb(field {
                                      name: "items"
                                      number: 2
                                      label: LABEL_REPEATED
                                      type: TYPE_MESSAGE
                                      type_name: ".broken.Item"
                                    })pb";
constexpr char kItemField[] = R"pb(field {
                                     name: "item"
                                     number: 2
                                     label: LABEL_OPTIONAL
                                     type: TYPE_MESSAGE
                                     type_name: ".broken.Item"
                                   })pb";

// enum Color { COLOR_UNSPECIFIED; COLOR_RED = "red"; COLOR_BLUE with
// `blue_options` }.
std::string ColorEnum(const std::string& blue_options) {
  return absl::Substitute(kColorEnum, blue_options);
}

constexpr char kColorField[] = R"pb(field {
                                      name: "color"
                                      number: 2
                                      label: LABEL_OPTIONAL
                                      type: TYPE_ENUM
                                      type_name: ".broken.Color"
                                    })pb";

INSTANTIATE_TEST_SUITE_P(
    Cases, CreateRejectsTest,
    ::testing::Values(
        // The baseline is valid, so each failure below comes from its one
        // change.
        BrokenCase{"valid_baseline", "", "", "", kGoodOptions, ""},
        BrokenCase{
            "valid_enum_with_wire_values", "", kColorField,
            ColorEnum(R"(options { [clink.gateway.v1.wire_value]: "blue" })"),
            kGoodOptions, ""},
        BrokenCase{"double_field", "", R"pb(field {
                                              name: "price"
                                              number: 2
                                              label: LABEL_OPTIONAL
                                              type: TYPE_DOUBLE
                                            })pb",
                   "", kGoodOptions, "floating-point"},
        BrokenCase{"float_in_nested_message", "",
                   R"pb(field {
                          name: "inner"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_MESSAGE
                          type_name: ".broken.Inner"
                        })pb",
                   kInnerMessage, kGoodOptions, "floating-point"},
        BrokenCase{"timestamp_without_encoding", "",
                   R"pb(field {
                          name: "created"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_MESSAGE
                          type_name: ".google.protobuf.Timestamp"
                        })pb",
                   "", kGoodOptions, "time encoding"},
        BrokenCase{"time_encoding_on_a_string", "",
                   R"pb(field {
                          name: "created"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_UNIX_MILLIS
                            }
                          }
                        })pb",
                   "", kGoodOptions, "time encoding"},
        BrokenCase{"decimal_on_an_integer", "",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_INT64
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                            }
                          }
                        })pb",
                   "", kGoodOptions, "DECIMAL"},
        BrokenCase{"min_decimal_not_a_decimal", "",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                              min_decimal: "0,5"
                            }
                          }
                        })pb",
                   "", kGoodOptions, "min_decimal"},
        BrokenCase{"request_amount_without_a_currency_rule",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                            }
                          }
                        })pb",
                   "", "", kGoodOptions, "needs currency_field"},
        BrokenCase{"currency_field_naming_a_field_that_is_no_currency_code",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                              currency_field: "id"
                            }
                          }
                        })pb",
                   "", "", kGoodOptions, "must name a currency_code field"},
        BrokenCase{"currency_code_on_an_integer", "",
                   R"pb(field {
                          name: "currency"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_INT32
                          options {
                            [clink.gateway.v1.field] { currency_code: true }
                          }
                        })pb",
                   "", kGoodOptions, "currency_code"},
        BrokenCase{"any_currency_on_a_plain_string", "",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] { any_currency: true }
                          }
                        })pb",
                   "", kGoodOptions, "for DECIMAL fields"},
        BrokenCase{"request_amount_with_its_currency_is_fine",
                   R"pb(field {
                          name: "amount"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                              currency_field: "currency"
                            }
                          }
                        }
                        field {
                          name: "currency"
                          number: 3
                          label: LABEL_OPTIONAL
                          type: TYPE_STRING
                          options {
                            [clink.gateway.v1.field] { currency_code: true }
                          }
                        })pb",
                   "", "", kGoodOptions, ""},
        BrokenCase{
            "path_variable_naming_a_missing_field", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{thing_id}" } })",
            "{thing_id}"},
        BrokenCase{
            "path_variable_naming_an_integer_field", R"pb(field {
                                                            name: "num"
                                                            number: 2
                                                            label:
                                                                LABEL_OPTIONAL
                                                            type: TYPE_INT32
                                                          })pb",
            "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{num}" } })",
            "{num}"},
        BrokenCase{
            "path_with_unclosed_brace", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id" } })",
            "unclosed"},
        BrokenCase{
            "path_without_leading_slash", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "things/{id}" } })",
            "start with /"},
        BrokenCase{"method_without_rest_option", "", "", "", "",
                   "missing (clink.gateway.v1.rest)"},
        BrokenCase{
            "rest_option_without_http_method", "", "", "",
            R"(options { [clink.gateway.v1.rest] { path: "/things/{id}" } })",
            "HTTP method"},
        // A method number this build does not know is a startup error, never
        // a silent GET (which would be retried and skip the idempotency
        // layer).
        BrokenCase{
            "unknown_http_method", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: 99 path: "/things/{id}" } })",
            "unknown HTTP method 99"},
        BrokenCase{
            "response_body_naming_a_missing_field", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" response_body: "thing" } })",
            "response_body"},
        BrokenCase{
            "list_response_body_not_repeated", "",
            R"pb(field {
                   name: "item"
                   number: 2
                   label: LABEL_OPTIONAL
                   type: TYPE_MESSAGE
                   type_name: ".google.protobuf.Timestamp"
                   options {
                     [clink.gateway.v1.field] {
                       encoding: VALUE_ENCODING_UNIX_MILLIS
                     }
                   }
                 })pb",
            "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" response_shape: RESPONSE_SHAPE_LIST response_body: "item" } })",
            "repeated"},
        BrokenCase{"get_request_with_a_message_field",
                   R"pb(field {
                          name: "filter"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_MESSAGE
                          type_name: ".broken.Resp"
                        })pb",
                   "", "", kGoodOptions, "scalars"},
        BrokenCase{
            "delete_request_with_a_message_field",
            R"pb(field {
                   name: "filter"
                   number: 2
                   label: LABEL_OPTIONAL
                   type: TYPE_MESSAGE
                   type_name: ".broken.Resp"
                 })pb",
            "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_DELETE path: "/things/{id}" } })",
            "scalars"},
        BrokenCase{"enum_value_without_wire_value", "", kColorField,
                   ColorEnum(""), kGoodOptions, "needs a wire_value"},
        BrokenCase{
            "duplicate_wire_value", "", kColorField,
            ColorEnum(R"(options { [clink.gateway.v1.wire_value]: "red" })"),
            kGoodOptions, "duplicate wire_value"},
        // Resp.node: Node, Node.children: repeated Node. Decoding follows the
        // schema, so a recursive type would let Clink's JSON set the depth.
        BrokenCase{"recursive_message", "",
                   R"pb(field {
                          name: "node"
                          number: 2
                          label: LABEL_OPTIONAL
                          type: TYPE_MESSAGE
                          type_name: ".broken.Node"
                        })pb",
                   R"pb(message_type {
                          name: "Node"
                          field {
                            name: "children"
                            number: 1
                            label: LABEL_REPEATED
                            type: TYPE_MESSAGE
                            type_name: ".broken.Node"
                          }
                        })pb",
                   kGoodOptions, "contains itself"},
        // `data` as an array needs RESPONSE_SHAPE_ARRAY: under OBJECT a
        // repeated response_body would be written as if it were one message.
        BrokenCase{
            "object_response_body_on_a_repeated_field", "", kItemsField,
            kItemMessage,
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" response_body: "items" } })",
            "must name a singular field"},
        BrokenCase{
            "array_response_body_on_a_singular_field", "", kItemField,
            kItemMessage,
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" response_shape: RESPONSE_SHAPE_ARRAY response_body: "item" } })",
            "an ARRAY response_body must name a repeated field"},
        BrokenCase{
            "array_shape_without_response_body", "", "", "",
            R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{id}" response_shape: RESPONSE_SHAPE_ARRAY } })",
            "an ARRAY response_body must name a repeated field"},
        BrokenCase{"decimal_map_of_integers", "",
                   R"pb(field {
                          name: "amounts"
                          number: 2
                          label: LABEL_REPEATED
                          type: TYPE_MESSAGE
                          type_name: ".broken.Resp.AmountsEntry"
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                            }
                          }
                        }
                        nested_type {
                          name: "AmountsEntry"
                          field {
                            name: "key"
                            number: 1
                            label: LABEL_OPTIONAL
                            type: TYPE_STRING
                          }
                          field {
                            name: "value"
                            number: 2
                            label: LABEL_OPTIONAL
                            type: TYPE_INT64
                          }
                          options { map_entry: true }
                        })pb",
                   "", kGoodOptions, "DECIMAL is for string fields and map"},
        BrokenCase{"decimal_map_with_a_currency_rule", "",
                   R"pb(field {
                          name: "amounts"
                          number: 2
                          label: LABEL_REPEATED
                          type: TYPE_MESSAGE
                          type_name: ".broken.Resp.AmountsEntry"
                          options {
                            [clink.gateway.v1.field] {
                              encoding: VALUE_ENCODING_DECIMAL
                              any_currency: true
                            }
                          }
                        }
                        nested_type {
                          name: "AmountsEntry"
                          field {
                            name: "key"
                            number: 1
                            label: LABEL_OPTIONAL
                            type: TYPE_STRING
                          }
                          field {
                            name: "value"
                            number: 2
                            label: LABEL_OPTIONAL
                            type: TYPE_STRING
                          }
                          options { map_entry: true }
                        })pb",
                   "", kGoodOptions, "keys are its currencies"}),
    [](const ::testing::TestParamInfo<BrokenCase>& info) {
      return info.param.name;
    });

// A one-RPC file (BrokenFile) built into its own pool and compiled; the pool
// outlives the codec.
struct OneRpc {
  std::unique_ptr<DescriptorPool> pool;
  absl::StatusOr<std::unique_ptr<RestCodec>> codec;
  const RestMethod* rest = nullptr;
  const Descriptor* request_type = nullptr;
};

OneRpc CompileOne(const BrokenCase& c) {
  OneRpc out;
  EXPECT_NE(v1::RestRule::descriptor(), nullptr);
  EXPECT_NE(google::protobuf::Timestamp::descriptor(), nullptr);
  FileDescriptorProto file;
  EXPECT_TRUE(TextFormat::ParseFromString(BrokenFile(c), &file));
  out.pool = std::make_unique<DescriptorPool>(DescriptorPool::generated_pool());
  const google::protobuf::FileDescriptor* built = out.pool->BuildFile(file);
  if (built == nullptr) {
    ADD_FAILURE() << file.DebugString();
    out.codec = absl::InternalError("file did not build");
    return out;
  }
  out.codec = RestCodec::Create({built->service(0)});
  if (out.codec.ok()) {
    out.rest = (*out.codec)->Find(*built->service(0)->method(0));
    out.request_type = built->service(0)->method(0)->input_type();
  }
  return out;
}

struct MethodCase {
  std::string method;  // HttpMethod value name
  http::Method want;
  bool body;  // JSON body (else query string)
};

class HttpMethodTest : public ::testing::TestWithParam<MethodCase> {};

// Every method of the mapping reaches the transport as itself; every method
// but GET is a write (idempotency layer, never retried once possibly sent);
// POST, PUT and PATCH send the non-path fields as JSON, GET and DELETE as the
// query.
TEST_P(HttpMethodTest, EncodesAsItselfAndEveryNonGetIsAWrite) {
  const MethodCase& m = GetParam();
  const OneRpc one = CompileOne(
      BrokenCase{"method", R"pb(field {
                                  name: "note_text"
                                  number: 2
                                  label: LABEL_OPTIONAL
                                  type: TYPE_STRING
                                })pb",
                 "", "",
                 absl::StrCat(R"(options { [clink.gateway.v1.rest] { method: )",
                              m.method, R"( path: "/things/{id}" } })"),
                 ""});
  ASSERT_TRUE(one.codec.ok()) << one.codec.status();
  ASSERT_NE(one.rest, nullptr);
  EXPECT_EQ(one.rest->http_method, m.want);
  EXPECT_EQ(one.rest->endpoint,
            absl::StrCat(http::MethodName(m.want), " /things/{id}"));
  EXPECT_EQ(one.rest->mutating(), m.want != http::Method::kGet);

  google::protobuf::DynamicMessageFactory factory(one.pool.get());
  std::unique_ptr<Message> request(
      factory.GetPrototype(one.request_type)->New());
  ASSERT_TRUE(TextFormat::ParseFromString(R"pb(id: "t_1" note_text: "a b")pb",
                                          request.get()));
  const absl::StatusOr<http::HttpRequest> http =
      (*one.codec)->EncodeRequest(*one.rest, *request);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->method, m.want);
  EXPECT_EQ(http->idempotent, m.want == http::Method::kGet);
  if (m.body) {
    EXPECT_EQ(http->path_and_query, "/things/t_1");
    EXPECT_EQ(http->body, R"({"noteText":"a b"})");
  } else {
    EXPECT_EQ(http->path_and_query, "/things/t_1?noteText=a%20b");
    EXPECT_EQ(http->body, "");
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllMethods, HttpMethodTest,
    ::testing::Values(
        MethodCase{"HTTP_METHOD_GET", http::Method::kGet, false},
        MethodCase{"HTTP_METHOD_POST", http::Method::kPost, true},
        MethodCase{"HTTP_METHOD_PUT", http::Method::kPut, true},
        MethodCase{"HTTP_METHOD_PATCH", http::Method::kPatch, true},
        MethodCase{"HTTP_METHOD_DELETE", http::Method::kDelete, false}),
    [](const ::testing::TestParamInfo<MethodCase>& info) {
      return info.param.method;
    });

// Every value of the HttpMethod enum but UNSPECIFIED compiles (the codec knows
// them all), so adding one to rest_options.proto without teaching the codec
// fails here rather than at a deployment's startup.
TEST(HttpMethodTest, TheCodecKnowsEveryDeclaredMethod) {
  const google::protobuf::EnumDescriptor* methods = v1::HttpMethod_descriptor();
  for (int i = 0; i < methods->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* v = methods->value(i);
    if (v->number() == 0) continue;
    const OneRpc one = CompileOne(BrokenCase{
        v->name(), "", "", "",
        absl::StrCat(R"(options { [clink.gateway.v1.rest] { method: )",
                     v->name(), R"( path: "/things/{id}" } })"),
        ""});
    EXPECT_TRUE(one.codec.ok()) << v->name() << ": " << one.codec.status();
  }
}

// --- Multipart uploads (UploadProductImage).

constexpr char kPng[] = "\x89PNG\r\n\x1a\n";
constexpr char kJpeg[] = "\xff\xd8\xff\xe0";

v1::UploadProductImageRequest Upload(std::string file, std::string name) {
  v1::UploadProductImageRequest request;
  request.set_file(std::move(file));
  request.set_file_name(std::move(name));
  return request;
}

struct UploadCase {
  std::string test_name;
  v1::UploadProductImageRequest request;
  std::vector<std::string> fields;  // empty: valid
  std::string message;              // a substring of the first violation
};

std::string PngOf(size_t size) {
  std::string data(kPng, 8);
  data.resize(size, '\0');
  return data;
}

const std::vector<UploadCase>& UploadCases() {
  static const auto* const cases = new std::vector<UploadCase>{
      {"png", Upload(PngOf(64), "logo.png"), {}, ""},
      {"jpeg_as_jpg_upper_case", Upload(kJpeg, "LOGO.JPG"), {}, ""},
      {"jpeg_as_jpeg", Upload(kJpeg, "logo.jpeg"), {}, ""},
      {"gif87a", Upload("GIF87a....", "a.gif"), {}, ""},
      {"webp",
       Upload(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16), "a.webp"),
       {},
       ""},
      {"exactly_5_mib", Upload(PngOf(5242880), "big.png"), {}, ""},
      {"one_byte_over_5_mib",
       Upload(PngOf(5242881), "big.png"),
       {"file"},
       "at most 5242880 bytes"},
      {"empty_file", Upload("", "a.png"), {"file"}, "is required"},
      {"no_file_name", Upload(PngOf(16), ""), {"file_name"}, "is required"},
      {"not_an_image", Upload("%PDF-1.7", "a.png"), {"file"}, "by its content"},
      {"svg_is_not_accepted",
       Upload("<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "a.svg"),
       {"file", "file_name"},
       ""},
      {"extension_not_accepted",
       Upload(PngOf(16), "logo.bmp"),
       {"file_name"},
       "must end in .jpg, .jpeg, .png, .gif, .webp"},
      {"no_extension", Upload(PngOf(16), "logo"), {"file_name"}, "must end"},
      {"extension_of_another_type",
       Upload(kJpeg, "logo.png"),
       {"file_name"},
       "ends in .png but file is a JPEG file"},
      {"quote_in_name",
       Upload(PngOf(16), "a\".png"),
       {"file_name"},
       "control characters"},
      {"crlf_in_name",
       Upload(PngOf(16), "a\r\nX-Evil: 1.png"),
       {"file_name"},
       "control characters"},
      {"slash_in_name",
       Upload(PngOf(16), "../a.png"),
       {"file_name"},
       "control characters"},
      {"name_too_long",
       Upload(PngOf(16), std::string(252, 'a') + ".png"),
       {"file_name"},
       "at most 255"},
  };
  return *cases;
}

class UploadValidationTest : public ::testing::TestWithParam<UploadCase> {};

// Every check is made before anything is sent and names its field; a valid
// file is encoded as one `file` part of the type its magic bytes say.
TEST_P(UploadValidationTest, ChecksTheFileBeforeSending) {
  const UploadCase& c = GetParam();
  const RestMethod* rest = Rest("BillingService.UploadProductImage");
  ASSERT_NE(rest, nullptr);
  const absl::Status status = Codec().Validate(*rest, c.request);
  if (c.fields.empty()) {
    ASSERT_TRUE(status.ok()) << status;
    const absl::StatusOr<http::HttpRequest> http =
        Codec().EncodeRequest(*rest, c.request);
    ASSERT_TRUE(http.ok()) << http.status();
    EXPECT_EQ(http->method, http::Method::kPost);
    EXPECT_FALSE(http->idempotent);
    ASSERT_EQ(http->headers.size(), 1u);
    const std::string boundary = http->headers[0].second.substr(
        std::string("multipart/form-data; boundary=").size());
    EXPECT_FALSE(boundary.empty());
    EXPECT_THAT(http->body,
                HasSubstr(absl::StrCat("filename=\"", c.request.file_name(),
                                       "\"\r\nContent-Type: image/")));
    EXPECT_THAT(http->body, HasSubstr(absl::StrCat("\r\n\r\n", c.request.file(),
                                                   "\r\n--", boundary, "--")));
    return;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(status),
              ::testing::UnorderedElementsAreArray(c.fields));
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
}

INSTANTIATE_TEST_SUITE_P(Files, UploadValidationTest,
                         ::testing::ValuesIn(UploadCases()),
                         [](const ::testing::TestParamInfo<UploadCase>& info) {
                           return info.param.test_name;
                         });

TEST(UploadTest, ContentTypeComesFromTheMagicBytesNotTheName) {
  const RestMethod* rest = Rest("BillingService.UploadProductImage");
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(rest->file_field->name(), "file");
  EXPECT_EQ(rest->filename_field->name(), "file_name");
  const absl::StatusOr<http::HttpRequest> http =
      Codec().EncodeRequest(*rest, Upload(kJpeg, "photo.JPG"));
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_THAT(http->body, HasSubstr("Content-Type: image/jpeg\r\n"));
  // A second encoding draws another boundary.
  const absl::StatusOr<http::HttpRequest> again =
      Codec().EncodeRequest(*rest, Upload(kJpeg, "photo.JPG"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(http->headers, again->headers);
}

// A multipart declaration that cannot work is a startup error.
constexpr char kBytesFile[] = R"pb(field {
                                     name: "file"
                                     number: 2
                                     label: LABEL_OPTIONAL
                                     type: TYPE_BYTES
                                     options {
                                       [clink.gateway.v1.field] {
                                         file_part {
                                           part_name: "file"
                                           filename_field: "file_name"
                                           types: "png" $0
                                         }
                                       }
                                     }
                                   }
                                   field {
                                     name: "file_name"
                                     number: 3
                                     label: LABEL_OPTIONAL
                                     type: TYPE_STRING
                                   })pb";

std::string MultipartOptions(const std::string& method) {
  return absl::StrCat(
      R"(options { [clink.gateway.v1.rest] { method: )", method,
      R"( path: "/things/{id}" body_encoding: BODY_ENCODING_MULTIPART } })");
}

TEST(MultipartCreateTest, DeclarationsThatCannotWorkAreStartupErrors) {
  struct Case {
    std::string request_fields;
    std::string method_options;
    std::string want;  // "" when valid
  };
  const std::string file = absl::Substitute(kBytesFile, "");
  const std::vector<Case> cases = {
      {file, MultipartOptions("HTTP_METHOD_POST"), ""},
      {file, MultipartOptions("HTTP_METHOD_PATCH"), ""},
      {file, MultipartOptions("HTTP_METHOD_GET"), "POST, PUT or PATCH"},
      {file, MultipartOptions("HTTP_METHOD_DELETE"), "POST, PUT or PATCH"},
      {"", MultipartOptions("HTTP_METHOD_POST"), "needs a bytes field"},
      {absl::Substitute(kBytesFile, R"(types: "bmp")"),
       MultipartOptions("HTTP_METHOD_POST"), "\"bmp\""},
      {absl::StrReplaceAll(file, {{"filename_field: \"file_name\"",
                                   "filename_field: \"nope\""}}),
       MultipartOptions("HTTP_METHOD_POST"), "filename_field"},
      {absl::StrReplaceAll(file, {{"TYPE_BYTES", "TYPE_STRING"}}),
       MultipartOptions("HTTP_METHOD_POST"), "singular bytes"},
      // file_part without a multipart body: it would go out as JSON.
      {file,
       R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_POST path: "/things/{id}" } })",
       "file_part is only for"},
      {file,
       R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_POST path: "/things/{id}" body_encoding: 7 } })",
       "unknown body_encoding 7"},
  };
  for (const Case& c : cases) {
    const OneRpc one = CompileOne(BrokenCase{"multipart", c.request_fields, "",
                                             "", c.method_options, ""});
    if (c.want.empty()) {
      EXPECT_TRUE(one.codec.ok()) << c.method_options << one.codec.status();
      continue;
    }
    EXPECT_EQ(one.codec.status().code(), absl::StatusCode::kFailedPrecondition)
        << c.request_fields << c.method_options;
    EXPECT_THAT(std::string(one.codec.status().message()), HasSubstr(c.want));
  }
}

// A request enum holding a number its type does not declare (proto3 keeps it;
// a caller can send any) is refused naming the field: there is no wire value
// to send, and a numeric_wire enum would have become invalid JSON. Found by
// the request fuzzer.
TEST(ValidationTest, EnumNumbersTheContractDoesNotDeclareAreRefused) {
  v1::CreateRefundRequest refund = FromText<v1::CreateRefundRequest>(
      R"pb(order_id: "ord_1"
           refund_merchant_order_id: "rf_1"
           refund_amount: "5.00")pb");
  refund.GetReflection()->SetEnumValue(
      &refund, refund.GetDescriptor()->FindFieldByName("refund_reason_type"),
      83);
  const absl::Status status =
      Codec().Validate(*Rest("PaymentService.CreateRefund"), refund);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(status), ElementsAre("refund_reason_type"));

  v1::CreatePriceRequest price = FromText<v1::CreatePriceRequest>(
      R"pb(product_id: "prd_1" currency: "USD" unit_amount: "1")pb");
  price.GetReflection()->SetEnumValue(
      &price, price.GetDescriptor()->FindFieldByName("price_type"), 7);
  EXPECT_THAT(ViolationFields(
                  Codec().Validate(*Rest("BillingService.CreatePrice"), price)),
              ElementsAre("price_type"));
}

}  // namespace
}  // namespace clink_gateway::clink
