// DatasetFormat between common/ and the public contract, for both services.
#ifndef MICROGPT_SERVER_DATASET_FORMAT_PROTO_H_
#define MICROGPT_SERVER_DATASET_FORMAT_PROTO_H_

#include "common/dataset.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

inline v1::DatasetFormat ToProto(DatasetFormat format) {
  return format == DatasetFormat::kText ? v1::DATASET_FORMAT_TEXT
                                        : v1::DATASET_FORMAT_DOCUMENTS;
}

// UNSPECIFIED is DOCUMENTS; a value outside the enum (a newer client) is not
// guessed at: the caller refuses it.
inline bool FromProto(v1::DatasetFormat proto, DatasetFormat* format) {
  switch (proto) {
    case v1::DATASET_FORMAT_UNSPECIFIED:
    case v1::DATASET_FORMAT_DOCUMENTS:
      *format = DatasetFormat::kDocuments;
      return true;
    case v1::DATASET_FORMAT_TEXT:
      *format = DatasetFormat::kText;
      return true;
    default:
      return false;
  }
}

}  // namespace microgpt

#endif  // MICROGPT_SERVER_DATASET_FORMAT_PROTO_H_
