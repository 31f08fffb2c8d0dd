#include "server/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace microgpt {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

const DescriptorPool& Pool() { return *DescriptorPool::generated_pool(); }

// Appends `file` and, depth first, every file it imports that this response
// does not hold yet: a client can then build the file without asking again.
template <typename FileDescriptorResponse>
void AddFileWithImports(const FileDescriptor* file,
                        std::set<const FileDescriptor*>& sent,
                        FileDescriptorResponse* response) {
  if (!sent.insert(file).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  // CopyTo leaves json_name out; without it clients fall back to the proto
  // field name instead of the lowerCamelCase the JSON mapping uses.
  file->CopyJsonNameTo(&proto);
  response->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFileWithImports(file->dependency(i), sent, response);
  }
}

template <typename Response>
void SetError(grpc::StatusCode code, std::string message, Response* response) {
  response->mutable_error_response()->set_error_code(code);
  response->mutable_error_response()->set_error_message(std::move(message));
}

// The file (and its imports) that answers a request, or NOT_FOUND naming
// what was asked for.
template <typename Response>
void AnswerWithFile(const FileDescriptor* file, absl::string_view what,
                    Response* response) {
  if (file == nullptr) {
    SetError(grpc::StatusCode::NOT_FOUND, absl::StrCat(what, " not found"),
             response);
    return;
  }
  std::set<const FileDescriptor*> sent;
  AddFileWithImports(file, sent, response->mutable_file_descriptor_response());
}

template <typename ExtensionRequest, typename Response>
void AnswerFileContainingExtension(const ExtensionRequest& extension,
                                   Response* response) {
  const Descriptor* type =
      Pool().FindMessageTypeByName(extension.containing_type());
  const FieldDescriptor* field =
      type == nullptr
          ? nullptr
          : Pool().FindExtensionByNumber(type, extension.extension_number());
  AnswerWithFile(field == nullptr ? nullptr : field->file(),
                 absl::StrCat("extension ", extension.extension_number(),
                              " of ", extension.containing_type()),
                 response);
}

template <typename Response>
void AnswerAllExtensionNumbers(const std::string& type_name,
                               Response* response) {
  const Descriptor* type = Pool().FindMessageTypeByName(type_name);
  if (type == nullptr) {
    SetError(grpc::StatusCode::NOT_FOUND,
             absl::StrCat("type ", type_name, " not found"), response);
    return;
  }
  std::vector<const FieldDescriptor*> extensions;
  Pool().FindAllExtensions(type, &extensions);
  auto* numbers = response->mutable_all_extension_numbers_response();
  numbers->set_base_type_name(type->full_name());
  for (const FieldDescriptor* field : extensions) {
    numbers->add_extension_number(field->number());
  }
}

}  // namespace

template <typename Request, typename Response>
Response AnswerReflectionRequest(const Request& request,
                                 const std::vector<std::string>& services) {
  Response response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  switch (request.message_request_case()) {
    case Request::kFileByFilename:
      AnswerWithFile(Pool().FindFileByName(request.file_by_filename()),
                     absl::StrCat("file ", request.file_by_filename()),
                     &response);
      break;
    case Request::kFileContainingSymbol:
      AnswerWithFile(
          Pool().FindFileContainingSymbol(request.file_containing_symbol()),
          absl::StrCat("symbol ", request.file_containing_symbol()), &response);
      break;
    case Request::kFileContainingExtension:
      AnswerFileContainingExtension(request.file_containing_extension(),
                                    &response);
      break;
    case Request::kAllExtensionNumbersOfType:
      AnswerAllExtensionNumbers(request.all_extension_numbers_of_type(),
                                &response);
      break;
    case Request::kListServices:
      for (const std::string& name : services) {
        response.mutable_list_services_response()->add_service()->set_name(
            name);
      }
      break;
    default:
      // A request kind newer than this server's reflection.proto.
      SetError(grpc::StatusCode::UNIMPLEMENTED,
               "the request sets none of the message kinds this server knows",
               &response);
      break;
  }
  return response;
}

template grpc::reflection::v1::ServerReflectionResponse AnswerReflectionRequest(
    const grpc::reflection::v1::ServerReflectionRequest&,
    const std::vector<std::string>&);
template grpc::reflection::v1alpha::ServerReflectionResponse
AnswerReflectionRequest(
    const grpc::reflection::v1alpha::ServerReflectionRequest&,
    const std::vector<std::string>&);

namespace {

std::vector<std::string> WithReflection(std::vector<std::string> services) {
  services.push_back(
      grpc::reflection::v1::ServerReflection::service_full_name());
  services.push_back(
      grpc::reflection::v1alpha::ServerReflection::service_full_name());
  return services;
}

}  // namespace

ReflectionServices::ReflectionServices(std::vector<std::string> services)
    : services_(WithReflection(std::move(services))),
      v1_(services_),
      v1alpha_(services_) {}

absl::Status ReflectionServices::CheckDescriptors() const {
  for (const std::string& name : services_) {
    if (Pool().FindServiceByName(name) == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "reflection: no descriptor of service ", name,
          " in the generated pool (is its .proto linked into the binary?)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace microgpt
