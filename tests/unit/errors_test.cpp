// DurableExecutionError: types, flags and the stored form (SPEC.md §7.1).

#include "durable_execution/errors.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace de = durable_execution;
using de::ErrorType;

TEST(Errors, DefaultsToNonRetryableGeneric) {
  const de::DurableExecutionError e{"boom"};
  EXPECT_STREQ(e.what(), "boom");
  EXPECT_EQ(e.type(), ErrorType::generic);
  EXPECT_FALSE(e.is_retryable());
  EXPECT_FALSE(e.is_internal());
}

TEST(Errors, Factories) {
  const auto r = de::DurableExecutionError::retryable("try again");
  EXPECT_EQ(r.type(), ErrorType::generic);
  EXPECT_TRUE(r.is_retryable());
  EXPECT_FALSE(r.is_internal());
  EXPECT_STREQ(r.what(), "try again");

  const auto n = de::DurableExecutionError::non_retryable("bad input", true);
  EXPECT_EQ(n.type(), ErrorType::generic);
  EXPECT_FALSE(n.is_retryable());
  EXPECT_TRUE(n.is_internal());
}

TEST(Errors, SubclassesCarryTheirTypeFlagsAndDefaultMessages) {
  const de::DurableExecutionNotFoundError not_found{"Task x not found"};
  EXPECT_EQ(not_found.type(), ErrorType::not_found);
  EXPECT_FALSE(not_found.is_retryable());
  EXPECT_STREQ(not_found.what(), "Task x not found");

  const de::DurableExecutionTimedOutError timed_out;
  EXPECT_EQ(timed_out.type(), ErrorType::timed_out);
  EXPECT_TRUE(timed_out.is_retryable());
  EXPECT_STREQ(timed_out.what(), "Task execution timed out");

  const de::DurableExecutionCancelledError cancelled;
  EXPECT_EQ(cancelled.type(), ErrorType::cancelled);
  EXPECT_FALSE(cancelled.is_retryable());
  EXPECT_STREQ(cancelled.what(), "Task execution cancelled");

  const de::DurableExecutionCancelledError internal{"stopped", true};
  EXPECT_TRUE(internal.is_internal());
}

TEST(Errors, NotFoundAndCancelledAreNeverRetryable) {
  for (const auto type : {ErrorType::not_found, ErrorType::cancelled}) {
    const de::DurableExecutionError e{"x", type, /*is_retryable=*/true};
    EXPECT_FALSE(e.is_retryable()) << de::to_string(type);
    EXPECT_FALSE(de::DurableExecutionError::from_stored({type, true, false, "x"}).is_retryable())
        << de::to_string(type);
  }
  EXPECT_TRUE((de::DurableExecutionError{"x", ErrorType::timed_out, true}.is_retryable()));
  EXPECT_FALSE((de::DurableExecutionError{"x", ErrorType::timed_out, false}.is_retryable()));
}

TEST(Errors, StoredFormRoundTrips) {
  for (const auto type :
       {ErrorType::generic, ErrorType::not_found, ErrorType::timed_out, ErrorType::cancelled}) {
    for (const bool retryable : {false, true}) {
      for (const bool internal : {false, true}) {
        const de::DurableExecutionError e{"message", type, retryable, internal};
        const auto stored = e.to_stored();
        EXPECT_EQ(stored.error_type, type);
        EXPECT_EQ(stored.is_retryable, e.is_retryable());
        EXPECT_EQ(stored.is_internal, internal);
        EXPECT_EQ(stored.message, "message");
        const auto back = de::DurableExecutionError::from_stored(stored);
        EXPECT_EQ(back.type(), type);
        EXPECT_EQ(back.is_retryable(), e.is_retryable());
        EXPECT_EQ(back.is_internal(), internal);
        EXPECT_STREQ(back.what(), "message");
        EXPECT_EQ(back.to_stored(), stored);
      }
    }
  }
  EXPECT_EQ(de::DurableExecutionTimedOutError{}.to_stored(),
            (de::StoredError{ErrorType::timed_out, true, false, "Task execution timed out"}));
}

TEST(Errors, CatchableAsRuntimeErrorAndAsTheBase) {
  EXPECT_THROW(throw de::DurableExecutionNotFoundError("missing"), de::DurableExecutionError);
  EXPECT_THROW(throw de::DurableExecutionCancelledError(), std::runtime_error);
  try {
    throw de::DurableExecutionTimedOutError();
  } catch (const de::DurableExecutionError& e) {
    EXPECT_EQ(e.type(), ErrorType::timed_out);
  }
}
