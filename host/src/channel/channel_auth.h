// Proof of the cluster secret without sending it: both ends exchange random
// nonces and answer with HMAC-SHA256(secret, role | nonces | names). Each
// side proves itself to the other, so a process without the secret can
// neither join a root nor impersonate one.
#pragma once

#include <string>
#include <string_view>

namespace lampyr::channel {

// kNonceSize random bytes from the OS CSPRNG.
std::string RandomNonce();
// role: 'R' (root's proof) or 'C' (child's proof).
std::string Proof(std::string_view secret, char role, std::string_view child_nonce, std::string_view root_nonce,
                  std::string_view child_name, std::string_view root_name);
// Constant-time equality (the length is not secret).
bool ProofEquals(std::string_view a, std::string_view b);
// Raw HMAC-SHA256, exposed for the known-answer unit test.
std::string HmacSha256(std::string_view key, std::string_view data);

}  // namespace lampyr::channel
