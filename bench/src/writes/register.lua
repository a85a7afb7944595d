-- bench-writes, scenario `register`: POST /register with the minimal RFC 7591 body of the predecessor's
-- benchmark (a confidential client: the service answers 201 with a secret).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"wrk-bench"}'
