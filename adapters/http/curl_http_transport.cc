// The loop: Create/Send/Shutdown, the multi loop thread, and adding,
// completing and cancelling calls. The egress socket hooks are in
// curl_transfer.cc, the URL/option checks and per-handle setup in
// curl_request_checks.cc.

#include "adapters/http/curl_http_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/http/curl_request_checks.h"
#include "adapters/http/curl_transfer.h"
#include "adapters/http/curl_wrappers.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/status_macros.h"
#include "common/sync.h"

namespace clink_gateway::http {

using curl_internal::CallContext;
using curl_internal::CheckHostAtCreate;
using curl_internal::DescribeAddressClass;
using curl_internal::NormalizeBaseUrl;
using curl_internal::ProxyHost;
using curl_internal::ToCurlMillis;
using curl_internal::Transfer;
using curl_internal::ValidateOptions;
using curl_internal::ValidateRequest;

namespace {

// The loop wakes up at least this often even with nothing to do
// (curl_multi_poll also returns early for curl's own timers, for
// curl_multi_wakeup(), and when the earliest delayed call is due).
constexpr int kPollTimeoutMs = 1000;

// A timeout this much before the call's own timeout is the connect timeout.
constexpr absl::Duration kConnectTimeoutSlack = absl::Milliseconds(5);

// Set on the loop thread while it runs Loop(), so Shutdown() can tell it is
// being called from a `done` callback (and must not join itself).
thread_local const void* tls_running_loop = nullptr;

HttpResult Failure(absl::Status status, Delivery delivery,
                   FailureKind failure) {
  HttpResult result;
  result.status = std::move(status);
  result.delivery = delivery;
  result.failure = failure;
  return result;
}

// For a call that never reached curl because the transport is shutting down.
HttpResult ShutdownFailure(absl::string_view context) {
  return Failure(absl::UnavailableError(
                     absl::StrCat(context, ": HTTP transport shut down")),
                 Delivery::kNotSent, FailureKind::kShutdown);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CurlHttpTransport>> CurlHttpTransport::Create(
    Options options) {
  GATEWAY_RETURN_IF_ERROR(ValidateOptions(options));
  std::string host;
  GATEWAY_ASSIGN_OR_RETURN(
      std::string base_url,
      NormalizeBaseUrl(options.base_url, options.allow_plaintext, &host));
  std::string protocols = options.allow_plaintext ? "http,https" : "https";

  // The egress policy: the base URL's host is always allowed.
  EgressPolicyOptions egress = options.egress;
  for (std::string& allowed : egress.allowed_hosts) {
    allowed = absl::AsciiStrToLower(allowed);
  }
  if (std::find(egress.allowed_hosts.begin(), egress.allowed_hosts.end(),
                host) == egress.allowed_hosts.end()) {
    egress.allowed_hosts.push_back(host);
  }
  EgressPolicy policy(std::move(egress));
  GATEWAY_RETURN_IF_ERROR(CheckHostAtCreate(
      policy, host, "base_url", "--clink_base_url", options.egress_observer));
  if (!options.proxy.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(const std::string proxy_host,
                             ProxyHost(options.proxy));
    GATEWAY_RETURN_IF_ERROR(CheckHostAtCreate(policy, proxy_host, "proxy",
                                              "--egress_proxy",
                                              options.egress_observer));
  }

  CurlSharePtr share = MakeCurlShare();
  CurlMultiPtr multi = MakeCurlMulti();
  if (share == nullptr || multi == nullptr) {
    return absl::InternalError("could not create curl multi/share handles");
  }
  // Used only by handles driven from the loop thread, so the share needs no
  // lock callbacks.
  GATEWAY_RETURN_IF_ERROR(CurlShareCodeToStatus(
      curl_share_setopt(share.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS),
      "share DNS"));
  GATEWAY_RETURN_IF_ERROR(
      CurlShareCodeToStatus(curl_share_setopt(share.get(), CURLSHOPT_SHARE,
                                              CURL_LOCK_DATA_SSL_SESSION),
                            "share TLS sessions"));
  const long max_connections =
      options.max_connections;  // NOLINT(runtime/int): curl's type
  GATEWAY_RETURN_IF_ERROR(CurlMultiCodeToStatus(
      curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS,
                        max_connections),
      "CURLMOPT_MAX_HOST_CONNECTIONS"));
  GATEWAY_RETURN_IF_ERROR(CurlMultiCodeToStatus(
      curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, max_connections),
      "CURLMOPT_MAXCONNECTS"));

  std::unique_ptr<CurlHttpTransport> transport(new CurlHttpTransport(
      std::move(options), std::move(base_url), std::move(protocols),
      std::move(policy), std::move(multi), std::move(share)));
  {
    CurlHttpTransport* self = transport.get();
    MutexLock lock(&self->thread_mu_);
    self->thread_ = std::thread([self] { self->Loop(); });
  }
  return transport;
}

CurlHttpTransport::CurlHttpTransport(Options options, std::string base_url,
                                     std::string protocols, EgressPolicy policy,
                                     CurlMultiPtr multi, CurlSharePtr share)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      base_url_(std::move(base_url)),
      protocols_(std::move(protocols)),
      policy_(std::move(policy)),
      sockets_(std::make_unique<CurlSocketTable>()),
      share_(std::move(share)),
      multi_(std::move(multi)) {}

CurlHttpTransport::~CurlHttpTransport() {
  if (tls_running_loop == this) {
    // From a `done` callback: the loop would keep using the destroyed object.
    std::fputs("CurlHttpTransport destroyed from its own callback\n", stderr);
    std::abort();
  }
  Shutdown();
}

void CurlHttpTransport::Send(HttpRequest request, SendOptions options,
                             DoneCallback done) {
  if (absl::Status status = ValidateRequest(request, options); !status.ok()) {
    std::move(done)(Failure(
        absl::Status(status.code(), absl::StrCat(CallContext(request), ": ",
                                                 status.message())),
        Delivery::kNotSent, FailureKind::kInvalidRequest));
    return;
  }
  auto call = std::make_unique<Call>();
  call->context = CallContext(request);
  call->url = absl::StrCat(base_url_, request.path_and_query);
  call->request = std::move(request);
  call->options = std::move(options);
  call->done = std::move(done);
  // One wake-up per batch: a call that finds pending_ non-empty is picked up
  // by the wake-up its first call made (the loop swaps pending_ out whole).
  bool wake = false;
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      wake = pending_.empty();
      pending_.push_back(std::move(call));
      ++stats_.in_flight;
    }
  }
  if (call != nullptr) {  // not queued: shutting down
    std::move(call->done)(
        Failure(absl::UnavailableError(absl::StrCat(
                    call->context, ": HTTP transport is shut down")),
                Delivery::kNotSent, FailureKind::kShutdown));
    return;
  }
  if (wake) (void)curl_multi_wakeup(multi_.get());
}

void CurlHttpTransport::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  (void)curl_multi_wakeup(multi_.get());
  if (tls_running_loop == this) {
    return;  // from a `done` callback: the loop exits after it returns
  }
  MutexLock lock(&thread_mu_);
  if (thread_.joinable()) thread_.join();
}

CurlHttpTransport::Stats CurlHttpTransport::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void CurlHttpTransport::Loop() {
  tls_running_loop = this;
  for (;;) {
    std::vector<std::unique_ptr<Call>> batch;
    bool stopping = false;
    {
      MutexLock lock(&mu_);
      batch.swap(pending_);
      stopping = stopping_;
    }
    if (stopping) {
      // Nothing can be queued after this: Send() sees stopping_ under the same
      // lock.
      for (auto& call : batch) {
        HttpResult result = ShutdownFailure(call->context);
        Complete(std::move(call), std::move(result), /*keep_handle=*/false);
      }
      FailDelayed();
      AbortActive(absl::UnavailableError("HTTP transport shut down"),
                  FailureKind::kShutdown);
      break;
    }
    for (auto& call : batch) Dispatch(std::move(call));
    StartDueCalls();

    int running = 0;
    if (CURLMcode rc = curl_multi_perform(multi_.get(), &running);
        rc != CURLM_OK) {
      AbortActive(CurlMultiCodeToStatus(rc, "curl_multi_perform"),
                  FailureKind::kOther);
    }
    DrainFinished();
    AbortCancelled();
    if (CURLMcode rc =
            curl_multi_poll(multi_.get(), nullptr, 0, PollTimeoutMs(), nullptr);
        rc != CURLM_OK) {
      AbortActive(CurlMultiCodeToStatus(rc, "curl_multi_poll"),
                  FailureKind::kOther);
    }
  }
  tls_running_loop = nullptr;
}

void CurlHttpTransport::Dispatch(std::unique_ptr<Call> call) {
  const absl::Time not_before = call->options.not_before;
  if (not_before <= clock_.Now()) {
    StartCall(std::move(call));
    return;
  }
  if (not_before >= call->options.deadline) {
    // It could only start once its deadline has passed: fail it now rather
    // than hold it until then.
    std::string message = absl::StrCat(
        call->context,
        ": deadline is not after not_before; the request was not sent");
    Complete(std::move(call),
             Failure(absl::DeadlineExceededError(message), Delivery::kNotSent,
                     FailureKind::kDeadline),
             /*keep_handle=*/false);
    return;
  }
  delayed_.emplace(not_before, std::move(call));
  UpdateWaitingStat();
}

void CurlHttpTransport::StartDueCalls() {
  if (delayed_.empty()) return;
  const absl::Time now = clock_.Now();
  std::vector<std::unique_ptr<Call>> due;
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    due.push_back(std::move(delayed_.begin()->second));
    delayed_.erase(delayed_.begin());
  }
  if (due.empty()) return;
  UpdateWaitingStat();
  // StartCall() fails a call whose deadline passed while it waited.
  for (auto& call : due) StartCall(std::move(call));
}

void CurlHttpTransport::FailDelayed() {
  std::multimap<absl::Time, std::unique_ptr<Call>> delayed;
  delayed.swap(delayed_);
  UpdateWaitingStat();
  for (auto& [not_before, call] : delayed) {
    HttpResult result = ShutdownFailure(call->context);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

void CurlHttpTransport::UpdateWaitingStat() {
  const auto waiting = static_cast<int64_t>(delayed_.size());
  MutexLock lock(&mu_);
  stats_.waiting = waiting;
}

int CurlHttpTransport::PollTimeoutMs() const {
  if (delayed_.empty()) return kPollTimeoutMs;
  const absl::Duration until_due = delayed_.begin()->first - clock_.Now();
  if (until_due <= absl::ZeroDuration()) return 0;
  // Rounded up: waking early would only go round the loop once more for
  // nothing.
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(until_due, absl::Milliseconds(1)));
  return static_cast<int>(std::clamp<int64_t>(ms, 1, kPollTimeoutMs));
}

void CurlHttpTransport::StartCall(std::unique_ptr<Call> call) {
  const absl::Time now = clock_.Now();
  if (now >= call->options.deadline) {
    std::string message = absl::StrCat(
        call->context, ": deadline passed before the request was sent");
    Complete(std::move(call),
             Failure(absl::DeadlineExceededError(message), Delivery::kNotSent,
                     FailureKind::kDeadline),
             /*keep_handle=*/false);
    return;
  }
  const RequestSigner* signer =
      call->options.signer != nullptr ? call->options.signer : options_.signer;
  if (absl::Status status = signer != nullptr ? signer->Sign(call->request)
                                              : absl::FailedPreconditionError(
                                                    "no signer for this call");
      !status.ok()) {
    absl::Status failure(
        status.code(),
        absl::StrCat(call->context, ": signing failed: ", status.message()));
    Complete(std::move(call),
             Failure(std::move(failure), Delivery::kNotSent,
                     FailureKind::kInvalidRequest),
             /*keep_handle=*/false);
    return;
  }
  bool stopping = false;
  {
    MutexLock lock(&mu_);
    stopping = stopping_;
  }
  if (stopping) {
    HttpResult result = ShutdownFailure(call->context);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
    return;
  }

  call->easy = AcquireHandle();
  absl::Status status =
      call->easy == nullptr
          ? absl::ResourceExhaustedError("curl_easy_init failed")
          : ConfigureHandle(*call, now);
  if (status.ok()) {
    status = CurlMultiCodeToStatus(
        curl_multi_add_handle(multi_.get(), call->easy.get()),
        "curl_multi_add_handle");
  }
  if (!status.ok()) {
    absl::Status failure(status.code(),
                         absl::StrCat(call->context, ": ", status.message()));
    Complete(
        std::move(call),
        Failure(std::move(failure), Delivery::kNotSent, FailureKind::kOther),
        /*keep_handle=*/false);
    return;
  }
  CURL* easy = call->easy.get();
  active_.emplace(easy, std::move(call));
  MutexLock lock(&mu_);
  ++stats_.requests_started;
}

void CurlHttpTransport::DrainFinished() {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode code =
        msg->data.result;  // read before removing: msg dies with the handle
    auto it = active_.find(easy);
    if (it == active_.end()) continue;
    std::unique_ptr<Call> call = std::move(it->second);
    active_.erase(it);
    (void)curl_multi_remove_handle(multi_.get(), easy);
    FinishTransfer(std::move(call), code);
  }
}

CurlHttpTransport::TransferCounts CurlHttpTransport::RecordTransferStats(
    const Call& call) {
  long connects = 0;  // NOLINT(runtime/int): curl's type
  if (curl_easy_getinfo(call.easy.get(), CURLINFO_NUM_CONNECTS, &connects) !=
          CURLE_OK ||
      connects < 0) {
    connects = 0;
  }
  const Transfer& transfer = call.transfer;
  {
    MutexLock lock(&mu_);
    stats_.connections_opened += connects;
    stats_.stale_connection_retries += transfer.stale_connection_retries;
    stats_.idempotent_resends += transfer.idempotent_resends;
    if (transfer.resend_blocked) ++stats_.resends_refused;
  }
  return {static_cast<int>(connects),
          static_cast<int64_t>(transfer.received_bytes)};
}

void CurlHttpTransport::FinishTransfer(std::unique_ptr<Call> call,
                                       CURLcode code) {
  CURL* easy = call->easy.get();
  if (code == CURLE_ABORTED_BY_CALLBACK && call->transfer.stale_connection &&
      !call->transfer.fresh_connection && RestartOnFreshConnection(*call)) {
    active_.emplace(easy, std::move(call));
    return;
  }
  const TransferCounts counts = RecordTransferStats(*call);
  Transfer& transfer = call->transfer;
  if (code == CURLE_OK) {
    long status_code = 0;  // NOLINT(runtime/int): curl's type
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status_code);
    HttpResult result;
    result.status = absl::OkStatus();
    result.delivery = Delivery::kReceived;
    result.response = std::move(transfer.response);
    result.response.status_code = static_cast<int>(status_code);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/true);
    return;
  }
  const Delivery delivery =
      transfer.request_started ? Delivery::kUnknown : Delivery::kNotSent;
  absl::Status status;
  FailureKind failure = FailureKind::kOther;
  std::string egress_reason;
  if (transfer.stale_connection) {
    // No time left to run it on a new connection (or that failed to start).
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": the pooled connection was closed by the server; not sent"));
    failure = FailureKind::kConnect;
  } else if (transfer.resend_blocked) {
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": connection lost after the request was sent; not resent"));
    failure = FailureKind::kConnectionLost;
  } else if (transfer.egress_denied && (code == CURLE_COULDNT_CONNECT ||
                                        code == CURLE_ABORTED_BY_CALLBACK)) {
    // Every address was refused (or the pooled connection's peer was).
    status = absl::PermissionDeniedError(absl::StrCat(
        call->context, ": egress denied: ", transfer.egress_address, " is ",
        DescribeAddressClass(transfer.egress_reason)));
    failure = FailureKind::kEgressDenied;
    egress_reason = std::string(AddressClassName(transfer.egress_reason));
  } else if (code == CURLE_INTERFACE_FAILED) {
    status = absl::UnavailableError(absl::StrCat(
        call->context, ": cannot bind the source address \"",
        options_.source_address,
        "\" (--egress_source_address); not sent: ", transfer.error_buffer));
  } else if (code == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
    status = absl::UnavailableError(absl::StrCat(
        call->context,
        ": the server's TLS public key does not match the pinned key "
        "(--clink_pinned_public_key); not sent"));
  } else if (transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    status = absl::InternalError(
        absl::StrCat(call->context, ": response larger than ",
                     options_.max_response_bytes, " bytes"));
    failure = FailureKind::kResponseTooLarge;
  } else {
    status = CurlCodeToStatus(code, call->context, transfer.error_buffer);
    failure = CurlCodeToFailureKind(code, transfer.request_started);
    // The connect timeout fired with time left before the call's own timeout
    // (e.g. a blackholed address): a connect failure, nothing sent, worth
    // another attempt if the deadline still has room.
    curl_off_t elapsed_us = 0;
    if (code == CURLE_OPERATION_TIMEDOUT && !transfer.request_started &&
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &elapsed_us) ==
            CURLE_OK &&
        absl::Microseconds(elapsed_us) + kConnectTimeoutSlack < call->timeout) {
      failure = FailureKind::kConnect;
      status = absl::UnavailableError(
          absl::StrCat(call->context, ": connecting timed out after ",
                       absl::FormatDuration(options_.connect_timeout)));
    }
  }
  HttpResult result = Failure(std::move(status), delivery, failure);
  result.connections_opened = counts.connections_opened;
  result.response_bytes = counts.response_bytes;
  result.egress_reason = std::move(egress_reason);
  Complete(std::move(call), std::move(result), /*keep_handle=*/false);
}

namespace {

bool IsCancelled(const SendOptions& options) {
  return options.cancelled != nullptr && options.cancelled->HasBeenNotified();
}

absl::Status CancelledFailure(absl::string_view context) {
  return absl::CancelledError(
      absl::StrCat(context, ": the caller cancelled; the call was aborted"));
}

}  // namespace

void CurlHttpTransport::AbortCancelled() {
  bool waiting_changed = false;
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (!IsCancelled(it->second->options)) {
      ++it;
      continue;
    }
    std::unique_ptr<Call> call = std::move(it->second);
    it = delayed_.erase(it);
    waiting_changed = true;
    HttpResult result = Failure(CancelledFailure(call->context),
                                Delivery::kNotSent, FailureKind::kOther);
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
  if (waiting_changed) UpdateWaitingStat();
  for (auto it = active_.begin(); it != active_.end();) {
    if (!IsCancelled(it->second->options)) {
      ++it;
      continue;
    }
    CURL* easy = it->first;
    std::unique_ptr<Call> call = std::move(it->second);
    it = active_.erase(it);
    (void)curl_multi_remove_handle(multi_.get(), easy);
    const TransferCounts counts = RecordTransferStats(*call);
    HttpResult result =
        Failure(CancelledFailure(call->context),
                call->transfer.request_started ? Delivery::kUnknown
                                               : Delivery::kNotSent,
                FailureKind::kOther);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

bool CurlHttpTransport::RestartOnFreshConnection(Call& call) {
  CURL* easy = call.easy.get();
  curl_off_t elapsed_us = 0;
  if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &elapsed_us) != CURLE_OK) {
    elapsed_us = 0;
  }
  const absl::Duration left =
      std::min(call.options.deadline - clock_.Now(),
               call.timeout - absl::Microseconds(elapsed_us));
  if (left <= absl::ZeroDuration()) return false;
  call.timeout = left;
  if (SetCurlOption(easy, CURLOPT_FRESH_CONNECT, 1L).ok() &&
      SetCurlOption(easy, CURLOPT_TIMEOUT_MS, ToCurlMillis(left)).ok() &&
      SetCurlOption(easy, CURLOPT_CONNECTTIMEOUT_MS,
                    ToCurlMillis(std::min(options_.connect_timeout, left)))
          .ok()) {
    Transfer& transfer = call.transfer;
    transfer.stale_connection = false;
    transfer.fresh_connection = true;
    ++transfer.stale_connection_retries;
    transfer.error_buffer[0] = '\0';
    if (curl_multi_add_handle(multi_.get(), easy) == CURLM_OK) return true;
    transfer.stale_connection = true;
  }
  return false;
}

void CurlHttpTransport::AbortActive(const absl::Status& status,
                                    FailureKind kind) {
  std::unordered_map<CURL*, std::unique_ptr<Call>> active;
  active.swap(active_);
  for (auto& [easy, call] : active) {
    (void)curl_multi_remove_handle(multi_.get(), easy);
    const TransferCounts counts = RecordTransferStats(*call);
    const Delivery delivery = call->transfer.request_started
                                  ? Delivery::kUnknown
                                  : Delivery::kNotSent;
    absl::Status failure(status.code(),
                         absl::StrCat(call->context, ": ", status.message()));
    HttpResult result = Failure(std::move(failure), delivery, kind);
    result.connections_opened = counts.connections_opened;
    result.response_bytes = counts.response_bytes;
    Complete(std::move(call), std::move(result), /*keep_handle=*/false);
  }
}

CurlEasyPtr CurlHttpTransport::AcquireHandle() {
  if (free_handles_.empty()) return MakeCurlEasy();
  CurlEasyPtr easy = std::move(free_handles_.back());
  free_handles_.pop_back();
  return easy;
}

void CurlHttpTransport::Complete(std::unique_ptr<Call> call, HttpResult result,
                                 bool keep_handle) {
  CurlEasyPtr easy = std::move(call->easy);
  DoneCallback done = std::move(call->done);
  call.reset();  // the handle is out of multi_, so its header list and buffers
                 // can go
  if (easy != nullptr && keep_handle &&
      free_handles_.size() < static_cast<size_t>(options_.max_connections)) {
    // Clear every option (including pointers into the dead Call) before the
    // handle is reused; the connection itself stays in multi_'s cache.
    curl_easy_reset(easy.get());
    free_handles_.push_back(std::move(easy));
  }
  easy.reset();
  {
    MutexLock lock(&mu_);
    --stats_.in_flight;
  }
  std::move(done)(std::move(result));
}

}  // namespace clink_gateway::http
