// The gRPC services of clink.gateway.v1 (proto/clink/gateway/v1/*.proto). Each
// RPC is one line: the REST mapping lives in the proto, and RpcForwarder does
// the rest for every RPC alike.
#ifndef CLINK_GATEWAY_SERVER_SERVICES_H_
#define CLINK_GATEWAY_SERVER_SERVICES_H_

#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/checkout.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "server/rpc_forwarder.h"

namespace clink_gateway::server {

class CheckoutServiceImpl final
    : public ::clink::gateway::v1::CheckoutService::CallbackService {
 public:
  explicit CheckoutServiceImpl(RpcForwarder& forwarder)
      : forwarder_(forwarder) {}

  grpc::ServerUnaryReactor* CreateCheckoutSession(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreateCheckoutSessionRequest* request,
      ::clink::gateway::v1::CreateCheckoutSessionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetCheckoutSession(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetCheckoutSessionRequest* request,
      ::clink::gateway::v1::GetCheckoutSessionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

 private:
  RpcForwarder& forwarder_;
};

class PaymentServiceImpl final
    : public ::clink::gateway::v1::PaymentService::CallbackService {
 public:
  explicit PaymentServiceImpl(RpcForwarder& forwarder)
      : forwarder_(forwarder) {}

  grpc::ServerUnaryReactor* CreatePayment(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreatePaymentRequest* request,
      ::clink::gateway::v1::CreatePaymentResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* RefreshPaymentQrCode(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::RefreshPaymentQrCodeRequest* request,
      ::clink::gateway::v1::RefreshPaymentQrCodeResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* CreatePaymentInstrument(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreatePaymentInstrumentRequest* request,
      ::clink::gateway::v1::CreatePaymentInstrumentResponse* response)
      override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetOrder(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetOrderRequest* request,
      ::clink::gateway::v1::GetOrderResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* ListOrders(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::ListOrdersRequest* request,
      ::clink::gateway::v1::ListOrdersResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* CreateRefund(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreateRefundRequest* request,
      ::clink::gateway::v1::CreateRefundResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetRefund(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetRefundRequest* request,
      ::clink::gateway::v1::GetRefundResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* CreateAgentPaymentSession(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreateAgentPaymentSessionRequest* request,
      ::clink::gateway::v1::CreateAgentPaymentSessionResponse* response)
      override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetAgentPaymentSession(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetAgentPaymentSessionRequest* request,
      ::clink::gateway::v1::GetAgentPaymentSessionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

 private:
  RpcForwarder& forwarder_;
};

class BillingServiceImpl final
    : public ::clink::gateway::v1::BillingService::CallbackService {
 public:
  explicit BillingServiceImpl(RpcForwarder& forwarder)
      : forwarder_(forwarder) {}

  grpc::ServerUnaryReactor* CreateCustomerPortalSession(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreateCustomerPortalSessionRequest* request,
      ::clink::gateway::v1::CreateCustomerPortalSessionResponse* response)
      override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* CreateSubscription(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CreateSubscriptionRequest* request,
      ::clink::gateway::v1::CreateSubscriptionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetSubscription(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetSubscriptionRequest* request,
      ::clink::gateway::v1::GetSubscriptionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* CancelSubscription(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::CancelSubscriptionRequest* request,
      ::clink::gateway::v1::CancelSubscriptionResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetInvoice(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetInvoiceRequest* request,
      ::clink::gateway::v1::GetInvoiceResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* ListProducts(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::ListProductsRequest* request,
      ::clink::gateway::v1::ListProductsResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetProduct(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetProductRequest* request,
      ::clink::gateway::v1::GetProductResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* ListPrices(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::ListPricesRequest* request,
      ::clink::gateway::v1::ListPricesResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

  grpc::ServerUnaryReactor* GetPrice(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetPriceRequest* request,
      ::clink::gateway::v1::GetPriceResponse* response) override {
    return forwarder_.Forward(context, *request, response);
  }

 private:
  RpcForwarder& forwarder_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_SERVICES_H_
