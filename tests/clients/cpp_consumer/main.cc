// Lists the models of a microgpt-generator and streams one sample of the first.
//   usage: consumer HOST:PORT
#include <iostream>

#include "microgpt/client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " HOST:PORT\n";
    return 2;
  }
  microgpt::ClientOptions options;
  options.timeout = std::chrono::seconds(10);
  options.stream_timeout = std::chrono::seconds(30);
  microgpt::GeneratorClient generator(argv[1], options);

  absl::StatusOr<microgpt::v1::ListModelsResponse> models =
      generator.ListModels();
  std::cout << "ListModels: " << models.status() << "\n";
  if (!models.ok()) return 1;
  for (const microgpt::v1::ModelInfo& model : models->models()) {
    std::cout << "model: " << model.name()
              << " versions: " << model.versions_size() << "\n";
  }
  if (models->models_size() == 0) return 1;

  microgpt::v1::GenerateRequest request;
  request.set_model(models->models(0).name());
  request.set_max_tokens(16);
  request.set_seed(42);
  int tokens = 0;
  std::cout << "sample: ";
  absl::Status status = generator.Generate(
      request, [&tokens](const microgpt::v1::GenerateResponse& token) {
        std::cout << token.text() << std::flush;
        ++tokens;
        return true;
      });
  std::cout << "\nGenerate: " << status << " tokens: " << tokens << "\n";
  return status.ok() && tokens > 0 ? 0 : 1;
}
