// RestCodec: the mapping compiler (Create: the annotations read and checked
// once, at startup, into RestMethods and the codec's indexes) and the
// look-ups. Encoding is in rest_codec_encoder.cc, decoding in
// rest_codec_decoder.cc.
#include "adapters/clink/rest_codec.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "adapters/clink/currency.h"
#include "adapters/clink/decimal.h"
#include "adapters/clink/file_type.h"
#include "adapters/clink/rest_codec_internal.h"
#include "adapters/http/multipart.h"
#include "common/errors/error_details.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor_database.h"
#include "rapidjson/document.h"
#include "rapidjson/encodings.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clink_gateway::clink {

// (The protobuf and RapidJSON names come from rest_codec_internal.h.)

namespace {

using rest_codec_internal::IsDecimal;
using rest_codec_internal::IsDecimalMap;
using rest_codec_internal::IsTimestamp;
using rest_codec_internal::kTimestampType;
using rest_codec_internal::RuleOf;

// The transport's method for `method`; false for UNSPECIFIED or a number this
// build does not know (never a silent GET: a GET would be retried and skip the
// idempotency layer).
bool ToHttpMethod(v1::HttpMethod method, http::Method* out) {
  switch (method) {
    case v1::HTTP_METHOD_GET:
      *out = http::Method::kGet;
      return true;
    case v1::HTTP_METHOD_POST:
      *out = http::Method::kPost;
      return true;
    case v1::HTTP_METHOD_PUT:
      *out = http::Method::kPut;
      return true;
    case v1::HTTP_METHOD_PATCH:
      *out = http::Method::kPatch;
      return true;
    case v1::HTTP_METHOD_DELETE:
      *out = http::Method::kDelete;
      return true;
    default:
      return false;
  }
}

// The message types `d` holds directly: message fields and map values, but not
// Timestamps (decoded as scalars).
std::vector<const Descriptor*> NestedMessageTypes(const Descriptor* d) {
  std::vector<const Descriptor*> out;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || IsTimestamp(*f)) {
      continue;
    }
    const Descriptor* nested = f->message_type();
    if (f->is_map()) {
      const FieldDescriptor* value = nested->map_value();
      if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
          IsTimestamp(*value)) {
        continue;
      }
      nested = value->message_type();
    }
    out.push_back(nested);
  }
  return out;
}

// A message type among the keys of `types` that contains itself, directly or
// through other messages; null when there is none. Iterative depth-first
// search.
template <typename Map>
const Descriptor* FindRecursiveType(const Map& types) {
  enum class Mark { kOnPath, kDone };
  absl::flat_hash_map<const Descriptor*, Mark> marks;
  struct Frame {
    const Descriptor* type;
    std::vector<const Descriptor*> children;
    size_t next = 0;
  };
  for (const auto& [root, unused] : types) {
    if (marks.contains(root)) continue;
    std::vector<Frame> path;
    path.push_back({root, NestedMessageTypes(root)});
    marks[root] = Mark::kOnPath;
    while (!path.empty()) {
      Frame& top = path.back();
      if (top.next == top.children.size()) {
        marks[top.type] = Mark::kDone;
        path.pop_back();
        continue;
      }
      const Descriptor* child = top.children[top.next++];
      const auto it = marks.find(child);
      if (it != marks.end()) {
        if (it->second == Mark::kOnPath) return child;
        continue;
      }
      marks[child] = Mark::kOnPath;
      path.push_back({child, NestedMessageTypes(child)});
    }
  }
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Startup: compile and check the annotations.

namespace {

absl::Status ProtoBug(absl::string_view where, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("REST mapping of ", where, ": ", what));
}

// FieldRule.currency_code, currency_field and any_currency are well formed.
absl::Status CheckMoneyRule(const FieldDescriptor& f) {
  const v1::FieldRule& rule = RuleOf(f);
  if (rule.currency_code() &&
      (f.cpp_type() != FieldDescriptor::CPPTYPE_STRING || f.is_repeated())) {
    return ProtoBug(f.full_name(), "currency_code is for singular strings");
  }
  if (rule.currency_field().empty() && !rule.any_currency()) {
    return absl::OkStatus();
  }
  if (f.is_map()) {
    return ProtoBug(f.full_name(),
                    "a DECIMAL map's keys are its currencies: no "
                    "currency_field or any_currency");
  }
  if (rule.encoding() != v1::VALUE_ENCODING_DECIMAL) {
    return ProtoBug(f.full_name(),
                    "currency_field and any_currency are for DECIMAL fields");
  }
  if (!rule.currency_field().empty() && rule.any_currency()) {
    return ProtoBug(f.full_name(), "currency_field or any_currency, not both");
  }
  if (!rule.currency_field().empty()) {
    const FieldDescriptor* code =
        f.containing_type()->FindFieldByName(rule.currency_field());
    if (code == nullptr || !RuleOf(*code).currency_code()) {
      return ProtoBug(f.full_name(),
                      absl::StrCat("currency_field \"", rule.currency_field(),
                                   "\" must name a currency_code field of ",
                                   f.containing_type()->name()));
    }
  }
  return absl::OkStatus();
}

// Every amount a request can carry is checked against a currency: each DECIMAL
// field reachable from a request type declares currency_field or
// any_currency.
absl::Status CheckRequestAmountsHaveCurrencies(
    std::vector<const Descriptor*> pending) {
  absl::flat_hash_set<const Descriptor*> seen;
  while (!pending.empty()) {
    const Descriptor* d = pending.back();
    pending.pop_back();
    if (!seen.insert(d).second || d->full_name() == kTimestampType) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const v1::FieldRule& rule = RuleOf(*f);
      if (rule.encoding() == v1::VALUE_ENCODING_DECIMAL && !f->is_map() &&
          rule.currency_field().empty() && !rule.any_currency()) {
        return ProtoBug(f->full_name(),
                        "a request amount needs currency_field (or "
                        "any_currency) so its scale is checked");
      }
      if (f->is_map()) {
        const FieldDescriptor* value = f->message_type()->map_value();
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          pending.push_back(value->message_type());
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        pending.push_back(f->message_type());
      }
    }
  }
  return absl::OkStatus();
}

// Compiles RestRule.body_encoding: for BODY_ENCODING_MULTIPART, the file part
// and its file-name field. `file_fields` collects the file_part fields in use
// (any other is an error found when indexing).
absl::Status CompileBody(
    const MethodDescriptor& m, const v1::RestRule& rule, RestMethod* out,
    absl::flat_hash_set<const FieldDescriptor*>* file_fields) {
  switch (rule.body_encoding()) {
    case v1::BODY_ENCODING_UNSPECIFIED:
    case v1::BODY_ENCODING_JSON:
      return absl::OkStatus();
    case v1::BODY_ENCODING_MULTIPART:
      break;
    default:
      return ProtoBug(m.full_name(),
                      absl::StrCat("unknown body_encoding ",
                                   static_cast<int>(rule.body_encoding())));
  }
  if (out->http_method == http::Method::kGet ||
      out->http_method == http::Method::kDelete) {
    return ProtoBug(m.full_name(), "a multipart body needs POST, PUT or PATCH");
  }
  absl::flat_hash_set<const FieldDescriptor*> path_fields;
  for (const PathSegment& segment : out->path)
    path_fields.insert(segment.field);
  const Descriptor* in = m.input_type();
  for (int i = 0; i < in->field_count(); ++i) {
    const FieldDescriptor* f = in->field(i);
    if (!RuleOf(*f).has_file_part()) {
      if (f->is_repeated() ||
          f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return ProtoBug(f->full_name(),
                        "a multipart request's other fields must be singular "
                        "scalars (text parts)");
      }
      continue;
    }
    if (out->file_field != nullptr) {
      return ProtoBug(m.full_name(), "more than one file_part field");
    }
    const v1::FilePart& part = RuleOf(*f).file_part();
    if (f->type() != FieldDescriptor::TYPE_BYTES || f->is_repeated()) {
      return ProtoBug(f->full_name(), "a file_part must be a singular bytes");
    }
    if (part.part_name().empty()) {
      return ProtoBug(f->full_name(), "file_part needs a part_name");
    }
    const FieldDescriptor* name = in->FindFieldByName(part.filename_field());
    if (name == nullptr || name->is_repeated() ||
        name->type() != FieldDescriptor::TYPE_STRING ||
        path_fields.contains(name)) {
      return ProtoBug(f->full_name(),
                      "file_part.filename_field must name a singular string "
                      "field of the request (not a path parameter)");
    }
    if (part.types().empty()) {
      return ProtoBug(f->full_name(), "file_part needs at least one type");
    }
    for (const std::string& type : part.types()) {
      if (FileTypeByExtension(type) == nullptr) {
        return ProtoBug(
            f->full_name(),
            absl::StrCat("file_part type \"", type,
                         "\" is not one the gateway can recognise"));
      }
    }
    out->file_field = f;
    out->filename_field = name;
    file_fields->insert(f);
  }
  if (out->file_field == nullptr) {
    return ProtoBug(
        m.full_name(),
        "BODY_ENCODING_MULTIPART needs a bytes field with file_part");
  }
  return absl::OkStatus();
}

absl::Status CompilePath(const MethodDescriptor& m, const std::string& path,
                         RestMethod* out) {
  if (path.empty() || path.front() != '/')
    return ProtoBug(m.full_name(), "path must start with /");
  size_t pos = 0;
  while (pos < path.size()) {
    const size_t open = path.find('{', pos);
    if (open == std::string::npos) {
      out->path.push_back({path.substr(pos), nullptr});
      break;
    }
    const size_t close = path.find('}', open);
    if (close == std::string::npos)
      return ProtoBug(m.full_name(), "unclosed { in path");
    if (open > pos)
      out->path.push_back({path.substr(pos, open - pos), nullptr});
    const std::string name = path.substr(open + 1, close - open - 1);
    const FieldDescriptor* f = m.input_type()->FindFieldByName(name);
    if (f == nullptr || f->is_repeated() ||
        f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      return ProtoBug(m.full_name(),
                      absl::StrCat("path variable {", name,
                                   "} must name a singular string field"));
    }
    out->path.push_back({std::string(), f});
    pos = close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RestCodec>> RestCodec::Create(
    const std::vector<const ServiceDescriptor*>& services,
    const std::vector<const Descriptor*>& standalone_messages) {
  std::unique_ptr<RestCodec> codec(new RestCodec());
  std::vector<const Descriptor*> pending;
  std::vector<const Descriptor*> requests;  // Every RPC's request type.
  // The file_part fields of multipart methods; file_part anywhere else is a
  // bug.
  absl::flat_hash_set<const FieldDescriptor*> file_fields;

  for (const ServiceDescriptor* service : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* m = service->method(i);
      if (!m->options().HasExtension(v1::rest)) {
        return ProtoBug(m->full_name(),
                        "missing (clink.gateway.v1.rest) option");
      }
      const v1::RestRule& rule = m->options().GetExtension(v1::rest);
      auto rest = std::make_unique<RestMethod>();
      rest->method = m;
      if (rule.method() == v1::HTTP_METHOD_UNSPECIFIED) {
        return ProtoBug(m->full_name(), "HTTP method not set");
      }
      if (!ToHttpMethod(rule.method(), &rest->http_method)) {
        return ProtoBug(m->full_name(),
                        absl::StrCat("unknown HTTP method ",
                                     static_cast<int>(rule.method())));
      }
      GATEWAY_RETURN_IF_ERROR(CompilePath(*m, rule.path(), rest.get()));
      GATEWAY_RETURN_IF_ERROR(CompileBody(*m, rule, rest.get(), &file_fields));
      rest->endpoint =
          absl::StrCat(http::MethodName(rest->http_method), " ", rule.path());
      rest->path_template = rule.path();
      rest->shape = rule.response_shape() == v1::RESPONSE_SHAPE_LIST ||
                            rule.response_shape() == v1::RESPONSE_SHAPE_ARRAY
                        ? rule.response_shape()
                        : v1::RESPONSE_SHAPE_OBJECT;
      rest->idempotent_upstream = rule.idempotent_upstream();
      rest->unwrapped_response_ok = rule.unwrapped_response_ok();
      rest->data_optional = rule.data_optional();
      const Descriptor* out = m->output_type();
      if (!rule.response_body().empty()) {
        rest->response_body = out->FindFieldByName(rule.response_body());
        if (rest->response_body == nullptr ||
            rest->response_body->cpp_type() !=
                FieldDescriptor::CPPTYPE_MESSAGE) {
          return ProtoBug(m->full_name(),
                          "response_body must name a message field");
        }
      }
      if (rest->shape == v1::RESPONSE_SHAPE_OBJECT &&
          rest->response_body != nullptr &&
          rest->response_body->is_repeated()) {
        return ProtoBug(m->full_name(),
                        "an OBJECT response_body must name a singular field "
                        "(a `data` array is RESPONSE_SHAPE_ARRAY)");
      }
      if (rest->shape == v1::RESPONSE_SHAPE_ARRAY &&
          (rest->response_body == nullptr ||
           !rest->response_body->is_repeated() ||
           rest->response_body->is_map())) {
        return ProtoBug(m->full_name(),
                        "an ARRAY response_body must name a repeated field");
      }
      if (rest->shape == v1::RESPONSE_SHAPE_LIST) {
        if (rest->response_body == nullptr ||
            !rest->response_body->is_repeated()) {
          return ProtoBug(m->full_name(),
                          "a LIST response_body must name a repeated field");
        }
        rest->total = out->FindFieldByName("total");
        if (rest->total != nullptr &&
            rest->total->cpp_type() != FieldDescriptor::CPPTYPE_INT64) {
          return ProtoBug(m->full_name(), "total must be int64");
        }
      }
      if (rest->http_method == http::Method::kGet ||
          rest->http_method == http::Method::kDelete) {
        // Query parameters: scalars (and Timestamps) only.
        const Descriptor* in = m->input_type();
        for (int k = 0; k < in->field_count(); ++k) {
          const FieldDescriptor* f = in->field(k);
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
              !IsTimestamp(*f)) {
            return ProtoBug(m->full_name(),
                            absl::StrCat(f->name(),
                                         ": GET and DELETE fields must be "
                                         "scalars (query parameters)"));
          }
        }
      }
      pending.push_back(m->input_type());
      requests.push_back(m->input_type());
      pending.push_back(out);
      codec->by_request_[m->input_type()] = rest.get();
      codec->by_method_[m] = std::move(rest);
    }
  }

  pending.insert(pending.end(), standalone_messages.begin(),
                 standalone_messages.end());
  // Index and check every message and enum reachable from requests,
  // responses and the standalone messages.
  while (!pending.empty()) {
    const Descriptor* d = pending.back();
    pending.pop_back();
    if (codec->fields_.contains(d) || d->full_name() == kTimestampType)
      continue;
    FieldIndex& index = codec->fields_[d];
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const v1::FieldRule& rule = RuleOf(*f);
      index[f->json_name()] = f;
      index.emplace(f->name(),
                    f);  // snake_case spelling, seen in a few Clink examples.
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT ||
          f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        return ProtoBug(
            f->full_name(),
            "floating-point fields are not allowed; use a DECIMAL string");
      }
      const bool time_encoding =
          rule.encoding() == v1::VALUE_ENCODING_UNIX_MILLIS ||
          rule.encoding() == v1::VALUE_ENCODING_UNIX_SECONDS ||
          rule.encoding() == v1::VALUE_ENCODING_ISO8601;
      if (IsTimestamp(*f) != time_encoding) {
        return ProtoBug(f->full_name(),
                        "Timestamp fields need a time encoding, and only they");
      }
      if (rule.encoding() == v1::VALUE_ENCODING_DECIMAL &&
          (f->is_map() ? !IsDecimalMap(*f)
                       : f->cpp_type() != FieldDescriptor::CPPTYPE_STRING)) {
        return ProtoBug(f->full_name(),
                        "DECIMAL is for string fields and map<string, "
                        "string> fields");
      }
      if (!rule.min_decimal().empty() && !IsValidDecimal(rule.min_decimal())) {
        return ProtoBug(f->full_name(), "min_decimal is not a decimal");
      }
      GATEWAY_RETURN_IF_ERROR(CheckMoneyRule(*f));
      if (rule.sensitive() &&
          f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        return ProtoBug(f->full_name(),
                        "sensitive is for string and bytes fields");
      }
      if (rule.format() != v1::STRING_FORMAT_UNSPECIFIED &&
          (f->cpp_type() != FieldDescriptor::CPPTYPE_STRING || f->is_map())) {
        return ProtoBug(f->full_name(), "format is for string fields");
      }
      if (rule.max_items() > 0 && !f->is_repeated()) {
        return ProtoBug(f->full_name(), "max_items is for repeated fields");
      }
      if (rule.has_file_part() && !file_fields.contains(f)) {
        return ProtoBug(f->full_name(),
                        "file_part is only for a top-level bytes field of a "
                        "BODY_ENCODING_MULTIPART request");
      }
      if (f->is_map() && f->message_type()->map_key()->cpp_type() !=
                             FieldDescriptor::CPPTYPE_STRING) {
        return ProtoBug(f->full_name(), "map keys must be strings");
      }
      if (f->is_map()) {
        const FieldDescriptor* value = f->message_type()->map_value();
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          pending.push_back(value->message_type());
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        pending.push_back(f->message_type());
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
          !codec->enums_.contains(f->enum_type())) {
        const EnumDescriptor* e = f->enum_type();
        EnumIndex& values = codec->enums_[e];
        for (int k = 0; k < e->value_count(); ++k) {
          const EnumValueDescriptor* v = e->value(k);
          const std::string& wire = v->options().GetExtension(v1::wire_value);
          if (v->number() == 0) continue;
          if (wire.empty())
            return ProtoBug(v->full_name(), "enum value needs a wire_value");
          if (!values.emplace(wire, v).second) {
            return ProtoBug(v->full_name(), "duplicate wire_value");
          }
        }
      }
    }
  }
  if (const Descriptor* d = FindRecursiveType(codec->fields_); d != nullptr) {
    return ProtoBug(d->full_name(),
                    "contains itself; decoding follows the message schema, "
                    "so a recursive type would let Clink's JSON nest (and the "
                    "decoder recurse) without bound");
  }
  GATEWAY_RETURN_IF_ERROR(CheckRequestAmountsHaveCurrencies(requests));
  for (auto& [descriptor, rest] : codec->by_method_) {
    rest->sensitive_response = HasSensitiveFields(*descriptor->output_type());
  }
  return codec;
}

namespace {

bool HasSensitiveFieldsIn(const Descriptor& type,
                          absl::flat_hash_set<const Descriptor*>& seen) {
  if (!seen.insert(&type).second) return false;
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* f = type.field(i);
    if (RuleOf(*f).sensitive()) return true;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        HasSensitiveFieldsIn(*f->message_type(), seen)) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool HasSensitiveFields(const Descriptor& type) {
  absl::flat_hash_set<const Descriptor*> seen;
  return HasSensitiveFieldsIn(type, seen);
}

int ClearSensitiveFields(Message* message) {
  const Reflection* r = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(*message, &fields);
  int cleared = 0;
  for (const FieldDescriptor* f : fields) {
    if (RuleOf(*f).sensitive()) {
      r->ClearField(message, f);
      ++cleared;
    } else if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      continue;
    } else if (f->is_repeated()) {  // Also a map: its entries are messages.
      for (int k = 0; k < r->FieldSize(*message, f); ++k) {
        cleared += ClearSensitiveFields(r->MutableRepeatedMessage(message, f, k));
      }
    } else {
      cleared += ClearSensitiveFields(r->MutableMessage(message, f));
    }
  }
  return cleared;
}

const std::vector<std::string>& GatewayServiceNames() {
  static const std::vector<std::string>* const names = [] {
    const google::protobuf::DescriptorPool* pool =
        google::protobuf::DescriptorPool::generated_pool();
    std::vector<std::string> files;
    // The generated database lists every .proto compiled into the binary
    // (each registers itself at static initialization).
    google::protobuf::DescriptorPool::internal_generated_database()
        ->FindAllFileNames(&files);
    auto* out = new std::vector<std::string>();
    for (const std::string& name : files) {
      const google::protobuf::FileDescriptor* file = pool->FindFileByName(name);
      if (file == nullptr || file->package() != kContractPackage) continue;
      for (int i = 0; i < file->service_count(); ++i) {
        if (IsGatewayServedService(file->service(i)->full_name())) continue;
        out->push_back(file->service(i)->full_name());
      }
    }
    std::sort(out->begin(), out->end());
    return out;
  }();
  return *names;
}

bool IsGatewayServedService(absl::string_view service_full_name) {
  return service_full_name == "clink.gateway.v1.EventService";
}

absl::StatusOr<std::unique_ptr<RestCodec>> RestCodec::CreateForServices(
    const std::vector<std::string>& service_names) {
  std::vector<const ServiceDescriptor*> services;
  for (const std::string& name : service_names) {
    const ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (service == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("service ", name, " is not linked in"));
    }
    services.push_back(service);
  }
  return Create(services);
}

const RestMethod* RestCodec::Find(const MethodDescriptor& method) const {
  const auto it = by_method_.find(&method);
  return it == by_method_.end() ? nullptr : it->second.get();
}

const RestMethod* RestCodec::FindByRequestType(
    const Descriptor& request_type) const {
  const auto it = by_request_.find(&request_type);
  return it == by_request_.end() ? nullptr : it->second;
}

std::vector<const RestMethod*> RestCodec::methods() const {
  std::vector<const RestMethod*> out;
  out.reserve(by_method_.size());
  for (const auto& [unused, method] : by_method_) out.push_back(method.get());
  return out;
}

}  // namespace clink_gateway::clink
