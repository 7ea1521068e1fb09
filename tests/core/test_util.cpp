// src/util: strings, the job registry that lets concurrent jobs share the cores.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "test_util.h"
#include "util/job_registry.h"
#include "util/strings.h"

using namespace dr;

TEST(Strings, JoinSplitTrim) {
  EXPECT_EQ(util::join({"a", "b", "c"}, ","), "a,b,c");
  EXPECT_EQ(util::split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(util::split("a,", ','), (std::vector<std::string>{"a", ""}));
  EXPECT_EQ(util::trim("  x y \t\n"), "x y");
  EXPECT_EQ(util::lower("ResNet"), "resnet");
}

TEST(JobRegistry, CountsLiveJobsAndForgetsKilledOnes) {
  const test::ScratchDir d("jobs");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    util::JobRegistry mine(d.path);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    ::pause();  // until killed: the lock goes with the process
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  {
    util::JobRegistry me(d.path);
    EXPECT_EQ(me.live_jobs(), 2);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_EQ(me.live_jobs(), 1);  // a kill -9 leaves a file but no lock
  }
  EXPECT_EQ(util::JobRegistry(d.path).live_jobs(), 1);  // the first registry removed its file
}
