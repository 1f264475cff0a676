#include "channel/channel_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "channel/channel_wire.h"

namespace lampyr::channel {

std::string RandomNonce() {
  std::string n(kNonceSize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return n;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key still needs a valid pointer.
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  HMAC(EVP_sha256(), k, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Proof(std::string_view secret, char role, std::string_view child_nonce, std::string_view root_nonce,
                  std::string_view child_name, std::string_view root_name) {
  // Names are length-prefixed so ("ab","c") and ("a","bc") differ.
  std::string msg = "lampyr-channel-v1";
  msg += role;
  msg.append(child_nonce);
  msg.append(root_nonce);
  PutStr16(&msg, child_name);
  PutStr16(&msg, root_name);
  return HmacSha256(secret, msg);
}

bool ProofEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace lampyr::channel
