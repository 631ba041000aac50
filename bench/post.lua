-- wrk script: POST one AdmissionReview, read from the file given after `--`, on every request.
--   wrk -s bench/post.lua https://127.0.0.1:8443/validate -- review.json
-- The request is formatted once per thread (wrk.init), so the script adds no per-request cost.

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk -s post.lua URL -- REVIEW.json")
  end
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
