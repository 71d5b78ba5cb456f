module github.com/stravahook/stravahook

go 1.26.8

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/redis/rueidis v1.0.79
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1
	github.com/twpayne/go-polyline v1.1.1
	github.com/vercel/go-bridge v0.0.0-20221108222652-296f4c6bdb6d
	golang.org/x/oauth2 v0.38.0
)

require (
	github.com/aws/aws-lambda-go v1.55.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
