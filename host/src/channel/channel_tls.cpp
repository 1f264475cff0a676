#include "channel/channel_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

namespace lampyr::channel {

namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

Status ChannelTls::Create(const ChannelTlsConfig& config, std::unique_ptr<ChannelTls>* out) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return Status::Error("master.channel_tls: cannot create a TLS context: " + OpenSslError());
  std::unique_ptr<ChannelTls> tls(new ChannelTls(ctx));
  // Both directions use this context: each end is client or server by who connected.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert.c_str()) != 1)
    return Status::Error("master.channel_tls.cert: cannot load " + config.cert + ": " + OpenSslError());
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return Status::Error("master.channel_tls.key: cannot load " + config.key + ": " + OpenSslError());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return Status::Error("master.channel_tls.key: does not match the certificate: " + OpenSslError());
  if (SSL_CTX_load_verify_locations(ctx, config.ca.c_str(), nullptr) != 1)
    return Status::Error("master.channel_tls.ca: cannot load " + config.ca + ": " + OpenSslError());
  // Mutual: a peer without a certificate from our CA never gets to the handshake.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  *out = std::move(tls);
  return Status::OK();
}

ChannelTls::~ChannelTls() { SSL_CTX_free(ctx_); }

SSL* ChannelTls::NewSsl() const { return SSL_new(ctx_); }

}  // namespace lampyr::channel
