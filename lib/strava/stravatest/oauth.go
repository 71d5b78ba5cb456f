package stravatest

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

var approvePage = template.Must(template.New("approve").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize application · Strava (stravatest)</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}.go{background:#fc4c02;color:#fff;border:0}</style></head>
<body><h1>Authorize application {{.ClientID}}</h1>
<p>This is the stravatest double, standing in for Strava. The application asks for: <code>{{.Scope}}</code></p>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<input type="hidden" name="state" value="{{.State}}">
<p>Sign in as:</p>
{{range $i, $a := .Athletes}}<label><input type="radio" name="athlete_id" value="{{$a.ID}}"{{if eq $i 0}} checked{{end}}> {{$a.Name}} ({{$a.ID}})</label><br>{{end}}
<p><button class="go" name="decision" value="approve">Authorize</button><button name="decision" value="deny">Cancel</button></p>
</form></body></html>`))

// authorizeRequest is what /oauth/authorize was asked, checked.
type authorizeRequest struct {
	ClientID, RedirectURI, Scope, State string
	Athletes                            []strava.Athlete
}

// beginAuthorize counts a call of /oauth/authorize and checks its
// parameters the way Strava does, answering 400 itself when they are wrong.
func (s *Server) beginAuthorize(w http.ResponseWriter, r *http.Request) (authorizeRequest, bool) {
	if !s.begin(w, r, RouteAuthorize, false, 0) {
		return authorizeRequest{}, false
	}
	q := authorizeRequest{
		ClientID: r.FormValue("client_id"), RedirectURI: r.FormValue("redirect_uri"),
		Scope: r.FormValue("scope"), State: r.FormValue("state"),
	}
	if q.ClientID != s.ClientID {
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "client_id", "invalid")
		return q, false
	}
	if u, err := url.Parse(q.RedirectURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "redirect_uri", "invalid")
		return q, false
	}
	if r.Method == http.MethodGet && r.FormValue("response_type") != "code" {
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "response_type", "invalid")
		return q, false
	}
	if p := r.FormValue("approval_prompt"); p != "" && p != "auto" && p != "force" {
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "approval_prompt", "invalid")
		return q, false
	}
	if q.Scope == "" {
		q.Scope = "read"
	}
	return q, true
}

// authorizePage is Strava's consent page: it lists the double's athletes
// to sign in as, and posts the decision back to /oauth/authorize.
func (s *Server) authorizePage(w http.ResponseWriter, r *http.Request) {
	q, ok := s.beginAuthorize(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	auto := s.autoApprove
	s.mu.Unlock()
	if auto != 0 {
		s.redirectApproved(w, r, q, auto)
		return
	}
	q.Athletes = s.Athletes()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = approvePage.Execute(w, q)
}

// authorizeDecision is the consent form's answer: back to the redirect
// URI with a code and the granted scope, or with error=access_denied.
func (s *Server) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	q, ok := s.beginAuthorize(w, r)
	if !ok {
		return
	}
	if r.FormValue("decision") != "approve" {
		redirectBack(w, r, q, map[string]string{"error": "access_denied"})
		return
	}
	athleteID, err := strconv.ParseInt(r.FormValue("athlete_id"), 10, 64)
	if err != nil {
		if as := s.Athletes(); len(as) > 0 {
			athleteID = as[0].ID
		}
	}
	s.redirectApproved(w, r, q, athleteID)
}

func (s *Server) redirectApproved(w http.ResponseWriter, r *http.Request, q authorizeRequest, athleteID int64) {
	s.mu.Lock()
	_, known := s.athletes[athleteID]
	code := randomToken()
	if known {
		s.codes[code] = grant{athlete: athleteID, scope: q.Scope, expiresAt: s.now().Add(CodeLifetime)}
	}
	s.mu.Unlock()
	if !known {
		writeError(w, http.StatusBadRequest, "Bad Request", "Athlete", "athlete_id", "invalid")
		return
	}
	redirectBack(w, r, q, map[string]string{"code": code, "scope": q.Scope})
}

// redirectBack sends the browser back to the application's redirect URI
// with the request's state and params.
func redirectBack(w http.ResponseWriter, r *http.Request, q authorizeRequest, params map[string]string) {
	back, _ := url.Parse(q.RedirectURI)
	v := back.Query()
	v.Set("state", q.State)
	for name, value := range params {
		v.Set(name, value)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// tokenAnswer is POST /oauth/token's 200 body.
type tokenAnswer struct {
	TokenType    string          `json:"token_type"`
	ExpiresAt    int64           `json:"expires_at"`
	ExpiresIn    int64           `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	AccessToken  string          `json:"access_token"`
	Athlete      *strava.Athlete `json:"athlete,omitempty"`
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	route := RouteRefresh
	if r.FormValue("grant_type") == "authorization_code" {
		route = RouteExchange
	}
	if !s.begin(w, r, route, false, 0) {
		return
	}
	if !s.appCredentialsOK(r) {
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "client_id", "invalid")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var answer tokenAnswer
	switch r.FormValue("grant_type") {
	case "authorization_code":
		code := r.FormValue("code")
		g, ok := s.codes[code]
		delete(s.codes, code) // a code works once, even when this use fails
		a := s.athletes[g.athlete]
		if !ok || a == nil || !s.now().Before(g.expiresAt) {
			writeError(w, http.StatusBadRequest, "Bad Request", "AuthorizationCode", "code", "invalid")
			return
		}
		a.authorized, a.scope = true, g.scope
		tok := s.issueLocked(g.athlete, g.scope)
		summary := a.profile
		summary.ResourceState = 2
		answer = tokenAnswerFor(tok, s.now())
		answer.Athlete = &summary
	case "refresh_token":
		old := r.FormValue("refresh_token")
		g, ok := s.refresh[old]
		if !ok || old == "" {
			writeError(w, http.StatusBadRequest, "Bad Request", "RefreshToken", "refresh_token", "invalid")
			return
		}
		// Rotation: the old refresh token stops working now.
		delete(s.refresh, old)
		answer = tokenAnswerFor(s.issueLocked(g.athlete, g.scope), s.now())
	default:
		writeError(w, http.StatusBadRequest, "Bad Request", "Application", "grant_type", "invalid")
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

func tokenAnswerFor(tok strava.Token, now time.Time) tokenAnswer {
	return tokenAnswer{
		TokenType: "Bearer", AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		ExpiresAt: tok.ExpiresAt.Unix(), ExpiresIn: int64(tok.ExpiresAt.Sub(now).Seconds()),
	}
}

// deauthorize is POST /oauth/deauthorize: the application gives up the
// athlete's grant. Strava then sends the deauthorization event.
func (s *Server) deauthorize(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r, RouteDeauthorize, false, 0) {
		return
	}
	s.mu.Lock()
	g, ok := s.validAccessLocked(r)
	if ok {
		s.revokeLocked(g.athlete)
	}
	s.mu.Unlock()
	if !ok {
		WriteStatus(w, http.StatusUnauthorized)
		return
	}
	s.pushInBackground(DeauthorizationEvent(g.athlete))
	writeJSON(w, http.StatusOK, map[string]string{"access_token": accessToken(r)})
}
