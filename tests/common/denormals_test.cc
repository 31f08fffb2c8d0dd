// Flush-to-zero and denormals-are-zero on the calling thread
// (common/denormals.h): off on a thread that did not ask, on after the call,
// and then a subnormal result is 0 and a subnormal input counts as 0.
#include "common/denormals.h"

#include <cmath>
#include <limits>
#include <thread>

#include "gtest/gtest.h"

namespace microgpt {
namespace {

// Opaque to the compiler, so the products happen at run time, in SSE.
volatile float kSmallestNormal = std::numeric_limits<float>::min();
volatile float kHalf = 0.5f;
volatile float kOne = 1.0f;

TEST(DenormalsTest, FlushedOnlyAfterTheCallAndOnlyOnThatThread) {
#if !defined(__SSE3__)
  GTEST_SKIP() << "no SSE3: FlushDenormalsOnThisThread is a no-op here";
#endif
  std::thread([] {
    // A thread that did not ask keeps IEEE subnormals...
    const float subnormal = kSmallestNormal * kHalf;
    EXPECT_EQ(std::fpclassify(subnormal), FP_SUBNORMAL);

    FlushDenormalsOnThisThread();
    EXPECT_TRUE(DenormalsFlushedOnThisThread());
    // ...after the call a result that would be subnormal is 0 (FTZ)...
    volatile float flushed = kSmallestNormal * kHalf;
    EXPECT_EQ(flushed, 0.0f);
    // ...and a subnormal input counts as 0 (DAZ).
    volatile float input = subnormal;
    EXPECT_EQ(input * kOne, 0.0f);
    // Normal numbers are untouched.
    EXPECT_EQ(kSmallestNormal * kOne, std::numeric_limits<float>::min());
  }).join();
}

}  // namespace
}  // namespace microgpt
