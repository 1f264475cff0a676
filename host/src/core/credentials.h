// Secrets from systemd credentials (LoadCredential=, $CREDENTIALS_DIRECTORY):
// files only this service can read, mounted on a private tmpfs, never in the
// environment of the process (where /proc/PID/environ, crash reports and
// child processes could see them) nor on a command line.
//
// Precedence for each secret (config.h): credential > environment > file.
//   credential      environment             config key
//   admin_token     LAMPYR_ADMIN_TOKEN      master.admin_token
//   cluster_secret  LAMPYR_CLUSTER_SECRET   master.cluster_secret
//   db_passwd       LAMPYR_DB_PASSWD        db.passwd
#pragma once

#include <string>

#include "core/status.h"

namespace lampyr {

// Reads credential `name` from $CREDENTIALS_DIRECTORY into *value (one
// trailing newline dropped: `echo secret > file` is how people write them).
// Returns OK with *found false when there is no such directory or file;
// an error when the file exists but cannot be read, is not a regular file,
// is empty or larger than 64 KiB — a secret that is there but unusable must
// stop the process, not be silently replaced by a weaker source.
Status ReadCredential(const std::string& name, std::string* value, bool* found);

}  // namespace lampyr
