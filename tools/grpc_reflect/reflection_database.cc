#include "tools/grpc_reflect/reflection_database.h"

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace microgpt::grpc_reflect {

namespace {

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

ReflectionDescriptorDatabase::ReflectionDescriptorDatabase(
    std::shared_ptr<grpc::ChannelInterface> channel, CallOptions options)
    : stub_(grpc::reflection::v1alpha::ServerReflection::NewStub(channel)),
      options_(std::move(options)) {}

ReflectionDescriptorDatabase::~ReflectionDescriptorDatabase() {
  if (stream_ != nullptr && !stream_broken_) {
    stream_->WritesDone();
    stream_->Finish().IgnoreError();
  }
}

absl::StatusOr<std::vector<std::string>>
ReflectionDescriptorDatabase::ListServices() {
  Request request;
  request.set_list_services("*");
  absl::StatusOr<Response> response = Exchange(request);
  if (!response.ok()) return response.status();
  if (!response->has_list_services_response()) {
    return absl::InternalError(
        "the server answered list_services with another response type");
  }
  std::vector<std::string> names;
  for (const auto& service : response->list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

bool ReflectionDescriptorDatabase::FindFileByName(
    const std::string& filename,
    google::protobuf::FileDescriptorProto* output) {
  if (files_.FindFileByName(filename, output)) return true;
  Request request;
  request.set_file_by_filename(filename);
  return Ask(absl::StrCat("file ", filename), request).has_value() &&
         files_.FindFileByName(filename, output);
}

bool ReflectionDescriptorDatabase::FindFileContainingSymbol(
    const std::string& symbol_name,
    google::protobuf::FileDescriptorProto* output) {
  if (files_.FindFileContainingSymbol(symbol_name, output)) return true;
  Request request;
  request.set_file_containing_symbol(symbol_name);
  std::optional<std::string> file =
      Ask(absl::StrCat("symbol ", symbol_name), request);
  // The local index does not cover every kind of symbol (enum values); the
  // server's first file is the one that declares it.
  return file.has_value() &&
         (files_.FindFileContainingSymbol(symbol_name, output) ||
          files_.FindFileByName(*file, output));
}

bool ReflectionDescriptorDatabase::FindFileContainingExtension(
    const std::string& containing_type, int field_number,
    google::protobuf::FileDescriptorProto* output) {
  if (files_.FindFileContainingExtension(containing_type, field_number,
                                         output)) {
    return true;
  }
  Request request;
  request.mutable_file_containing_extension()->set_containing_type(
      containing_type);
  request.mutable_file_containing_extension()->set_extension_number(
      field_number);
  std::optional<std::string> file = Ask(
      absl::StrCat("extension ", containing_type, " ", field_number), request);
  return file.has_value() && (files_.FindFileContainingExtension(
                                  containing_type, field_number, output) ||
                              files_.FindFileByName(*file, output));
}

std::optional<std::string> ReflectionDescriptorDatabase::Ask(
    const std::string& key, const Request& request) {
  if (unknown_.count(key) > 0) return std::nullopt;
  absl::StatusOr<Response> response = Exchange(request);
  if (!response.ok() || !response->has_file_descriptor_response()) {
    if (!stream_broken_) unknown_.insert(key);
    return std::nullopt;
  }
  return AddFiles(response->file_descriptor_response());
}

absl::StatusOr<ReflectionDescriptorDatabase::Response>
ReflectionDescriptorDatabase::Exchange(const Request& request) {
  if (stream_broken_) return ToAbslStatus(stream_status_);
  if (stream_ == nullptr) {
    context_ = std::make_unique<grpc::ClientContext>();
    ApplyCallOptions(options_, context_.get());
    stream_ = stub_->ServerReflectionInfo(context_.get());
  }
  Response response;
  if (!stream_->Write(request) || !stream_->Read(&response)) {
    stream_broken_ = true;
    stream_status_ = stream_->Finish();
    if (stream_status_.ok()) {
      stream_status_ = grpc::Status(grpc::StatusCode::INTERNAL,
                                    "the server ended the reflection stream");
    }
    return ToAbslStatus(stream_status_);
  }
  if (response.has_error_response()) {
    return absl::Status(
        static_cast<absl::StatusCode>(response.error_response().error_code()),
        response.error_response().error_message());
  }
  return response;
}

std::string ReflectionDescriptorDatabase::AddFiles(
    const grpc::reflection::v1alpha::FileDescriptorResponse& response) {
  std::string first;
  for (const std::string& bytes : response.file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) continue;
    if (first.empty()) first = file.name();
    google::protobuf::FileDescriptorProto known;
    if (!files_.FindFileByName(file.name(), &known)) files_.Add(file);
  }
  return first;
}

}  // namespace microgpt::grpc_reflect
