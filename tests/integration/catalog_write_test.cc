// The catalog writes end to end, gateway over TLS to the emulator: a product
// image uploaded as multipart/form-data (bigger than the default 1 MiB request
// limit), a product created with it, a price created and updated (PUT), each
// read back through the read RPCs; a bad image is refused before anything is
// sent; a keyed PUT is sent once.
#include <string>

#include "absl/strings/match.h"
#include "clink/gateway/v1/billing.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

class CatalogWriteTest : public GatewayFixture {};

// A 3 MiB "PNG": the signature, then zeros.
std::string BigPng() {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png.resize(3 << 20, '\0');
  return png;
}

TEST_F(CatalogWriteTest, UploadCreateProductCreateAndUpdatePrice) {
  v1::UploadProductImageRequest upload;
  upload.set_file(BigPng());
  upload.set_file_name("team-plan.png");
  v1::UploadProductImageResponse image;
  const grpc::Status uploaded =
      billing_->UploadProductImage(Context().get(), upload, &image);
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  EXPECT_TRUE(absl::StartsWith(image.oss_id(), "oss_")) << image.oss_id();
  EXPECT_TRUE(absl::StartsWith(image.url(), "https://")) << image.url();
  EXPECT_EQ(image.file_name(), "team-plan.png");
  const auto sent = emulator_->requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].method, "POST");
  EXPECT_TRUE(
      absl::StartsWith(sent[0].content_type, "multipart/form-data; boundary="))
      << sent[0].content_type;
  EXPECT_TRUE(absl::StrContains(sent[0].body, upload.file()));

  v1::CreateProductRequest create;
  create.set_name("Team Plan");
  create.set_image(image.oss_id());
  create.set_tax_category(v1::TAX_CATEGORY_SOFTWARE_SERVICE);
  v1::ProductPriceSpec* monthly = create.add_price_list();
  monthly->set_currency("USD");
  monthly->set_unit_amount("49.90");
  monthly->set_price_type(v1::PRICE_TYPE_RECURRING);
  monthly->mutable_recurring_details()->set_interval(
      v1::RECURRING_INTERVAL_MONTH);
  monthly->set_is_default_price(true);
  v1::CreateProductResponse created;
  const grpc::Status product_status =
      billing_->CreateProduct(Context().get(), create, &created);
  ASSERT_TRUE(product_status.ok()) << product_status.error_message();
  const v1::Product& product = created.product();
  EXPECT_EQ(product.image(), image.url());
  ASSERT_EQ(product.price_list_size(), 1);
  EXPECT_EQ(product.price_list(0).unit_amount(), "49.90");
  EXPECT_EQ(product.default_price(), product.price_list(0).price_id());

  v1::GetProductRequest get_product;
  get_product.set_product_id(product.product_id());
  v1::GetProductResponse read_product;
  ASSERT_TRUE(
      billing_->GetProduct(Context().get(), get_product, &read_product).ok());
  EXPECT_EQ(read_product.product().name(), "Team Plan");

  v1::CreatePriceRequest create_price;
  create_price.set_product_id(product.product_id());
  create_price.set_currency("JPY");
  create_price.set_unit_amount("4980");
  create_price.set_price_type(v1::PRICE_TYPE_ONE_TIME);
  v1::CreatePriceResponse price;
  const grpc::Status price_status =
      billing_->CreatePrice(Context().get(), create_price, &price);
  ASSERT_TRUE(price_status.ok()) << price_status.error_message();
  EXPECT_EQ(price.price().unit_amount(), "4980");

  v1::ListPricesRequest list;
  list.set_product_id(product.product_id());
  list.set_page_num(1);
  list.set_page_size(10);
  v1::ListPricesResponse prices;
  ASSERT_TRUE(billing_->ListPrices(Context().get(), list, &prices).ok());
  ASSERT_EQ(prices.total(), 2);
  EXPECT_EQ(prices.prices(1).price_id(), price.price().price_id());

  // A keyed PUT: the retry with the same key is answered from the store.
  v1::UpdatePriceRequest update;
  update.set_price_id(price.price().price_id());
  update.set_unit_amount("3980");
  update.set_currency("JPY");
  update.set_is_active(v1::PRICE_ACTIVE_STATE_INACTIVE);
  emulator_->ClearRequests();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto context = Context();
    context->AddMetadata("idempotency-key", "update-price-jpy-3980");
    v1::UpdatePriceResponse updated;
    const grpc::Status status =
        billing_->UpdatePrice(context.get(), update, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(updated.price().unit_amount(), "3980");
    EXPECT_FALSE(updated.price().active());
  }
  ASSERT_EQ(emulator_->requests().size(), 1u);
  EXPECT_EQ(emulator_->requests()[0].method, "PUT");

  v1::GetPriceRequest get_price;
  get_price.set_price_id(price.price().price_id());
  v1::GetPriceResponse read_price;
  ASSERT_TRUE(billing_->GetPrice(Context().get(), get_price, &read_price).ok());
  EXPECT_EQ(read_price.price().unit_amount(), "3980");
  EXPECT_FALSE(read_price.price().active());
}

TEST_F(CatalogWriteTest, AFileThatIsNotAnAcceptedImageIsRefusedUnsent) {
  v1::UploadProductImageRequest upload;
  upload.set_file("%PDF-1.7 not an image");
  upload.set_file_name("brochure.png");
  v1::UploadProductImageResponse image;
  const grpc::Status status =
      billing_->UploadProductImage(Context().get(), upload, &image);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const auto bad = BadRequestOf(status);
  ASSERT_EQ(bad.field_violations_size(), 1) << status.error_message();
  EXPECT_EQ(bad.field_violations(0).field(), "file");
  EXPECT_TRUE(emulator_->requests().empty());
}

}  // namespace
}  // namespace clink_gateway::testing
