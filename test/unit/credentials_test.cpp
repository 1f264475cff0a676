// Secrets: systemd credential > environment > config file (core/credentials.h),
// through the real config loader.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/credentials.h"

namespace lampyr {
namespace {

namespace fs = std::filesystem;

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lampyr-cred-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    creds_ = dir_ + "/creds";
    fs::create_directory(creds_);
    for (const char* v : {"CREDENTIALS_DIRECTORY", "LAMPYR_ADMIN_TOKEN", "LAMPYR_CLUSTER_SECRET", "LAMPYR_DB_PASSWD"})
      unsetenv(v);
  }
  void TearDown() override {
    for (const char* v : {"CREDENTIALS_DIRECTORY", "LAMPYR_ADMIN_TOKEN", "LAMPYR_CLUSTER_SECRET", "LAMPYR_DB_PASSWD"})
      unsetenv(v);
    fs::remove_all(dir_);
  }
  void Cred(const std::string& name, const std::string& text) { std::ofstream(creds_ + "/" + name) << text; }
  Status Load(Config* c, std::vector<ConfigIssue>* issues) {
    return ParseConfig(R"({"master": {"admin_token": "file-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c", "cluster_secret": "file-secret-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c"},
                           "db": {"user": "u", "passwd": "file-passwd-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c", "db": "g"},
                           "servers": {"game1": {"netport": 12000}}})",
                       dir_, c, issues, /*apply_env=*/true, /*check_files=*/false);
  }
  std::string dir_, creds_;
};

TEST_F(CredentialsTest, FileWhenNothingElse) {
  Config c;
  std::vector<ConfigIssue> issues;
  ASSERT_TRUE(Load(&c, &issues).ok());
  EXPECT_EQ(c.master.admin_token, "file-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");
  EXPECT_EQ(c.master.cluster_secret, "file-secret-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");
  EXPECT_EQ(c.db.passwd, "file-passwd-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");
}

TEST_F(CredentialsTest, CredentialBeatsEnvironmentBeatsFile) {
  setenv("LAMPYR_ADMIN_TOKEN", "env-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c", 1);
  setenv("LAMPYR_CLUSTER_SECRET", "env-secret-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c", 1);
  setenv("CREDENTIALS_DIRECTORY", creds_.c_str(), 1);
  Cred("admin_token", "cred-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c\n");  // echo adds a newline: dropped
  Cred("db_passwd", "cred-passwd-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");
  Config c;
  std::vector<ConfigIssue> issues;
  ASSERT_TRUE(Load(&c, &issues).ok());
  EXPECT_EQ(c.master.admin_token, "cred-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");       // credential over env and file
  EXPECT_EQ(c.master.cluster_secret, "env-secret-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");    // no credential: env over file
  EXPECT_EQ(c.db.passwd, "cred-passwd-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c");               // credential over file
}

TEST_F(CredentialsTest, UnusableCredentialIsAnErrorNotAFallback) {
  setenv("CREDENTIALS_DIRECTORY", creds_.c_str(), 1);
  setenv("LAMPYR_ADMIN_TOKEN", "env-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c", 1);
  Cred("admin_token", "");
  fs::create_symlink(creds_ + "/admin_token", creds_ + "/cluster_secret");
  Config c;
  std::vector<ConfigIssue> issues;
  EXPECT_FALSE(Load(&c, &issues).ok());
  std::string all;
  for (const auto& i : issues) all += i.ToString() + "\n";
  EXPECT_NE(all.find("master.admin_token: credential admin_token: empty"), std::string::npos) << all;
  EXPECT_NE(all.find("master.cluster_secret: credential cluster_secret: cannot open"), std::string::npos) << all;
  // The secret's value never shows in a message.
  EXPECT_EQ(all.find("env-token-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7c"), std::string::npos);
}

TEST_F(CredentialsTest, NoDirectoryMeansNotFound) {
  std::string v;
  bool found = true;
  EXPECT_TRUE(ReadCredential("admin_token", &v, &found).ok());
  EXPECT_FALSE(found);
  setenv("CREDENTIALS_DIRECTORY", creds_.c_str(), 1);
  EXPECT_TRUE(ReadCredential("admin_token", &v, &found).ok());
  EXPECT_FALSE(found);
}

}  // namespace
}  // namespace lampyr
