// ChannelTls: the OpenSSL context of a process's channel links when
// master.channel_tls is set (docs/operations.md, "Channel TLS"). Mutual TLS:
// every node shows the configured certificate and accepts a peer only with
// a certificate the configured CA signed. Names are not checked against the
// certificate: the node name is proven by the cluster secret inside, and
// admitted by the config (channel/node_policy.h).
#pragma once

#include <memory>

#include "core/config.h"
#include "core/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace lampyr::channel {

class ChannelTls : NonCopyable {
 public:
  // Loads the certificate, key and CA; the error names the file and OpenSSL's reason.
  static Status Create(const ChannelTlsConfig& config, std::unique_ptr<ChannelTls>* out);
  ~ChannelTls();
  // A new connection's SSL object (owned by its bufferevent from then on).
  SSL* NewSsl() const;

 private:
  explicit ChannelTls(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

}  // namespace lampyr::channel
