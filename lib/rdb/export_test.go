package rdb

import (
	"context"
	"crypto/x509"

	"github.com/redis/rueidis"
)

// ConnectTrusting is Connect for a rediss:// URL whose server certificate
// is signed by roots (a test's throwaway CA) rather than a public CA.
func ConnectTrusting(ctx context.Context, rawURL string, roots *x509.CertPool) (rueidis.Client, error) {
	opt, err := Options(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.RootCAs = roots
	}
	return connect(ctx, rawURL, opt)
}
