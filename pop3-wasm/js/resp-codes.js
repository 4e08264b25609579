// What the response codes on a refused login mean, in a postmaster's words,
// for the checker page, pop3-check and pop3 shell alike. Which Pop3Error
// code a refusal becomes is the core's rule (README, "Errors"): a -ERR to
// USER, PASS, APOP or AUTH is AUTH_FAILED unless its code says the
// credentials were not the problem (IN-USE, LOGIN-DELAY, SYS/TEMP,
// SYS/PERM: SERVER_ERROR, `respCode` set).

/** RFC 2449 § 8 and RFC 3206 codes: `{ title, text }`. */
export const RESP_CODES = Object.freeze({
  'IN-USE': Object.freeze({
    title: 'Mailbox in use',
    text: 'Another session has this mailbox open (IN-USE): the server lets one session in at a time. Close the other client or wait for it to finish; the password may well be right.',
  }),
  'LOGIN-DELAY': Object.freeze({
    title: 'Logging in too often',
    text: 'The server limits how often this mailbox may log in (LOGIN-DELAY; CAPA says the minimum interval). Wait before the next try; the password may well be right.',
  }),
  'SYS/TEMP': Object.freeze({
    title: 'Temporary problem on the server',
    text: 'The server hit a problem of its own that should pass (SYS/TEMP): try again later. It is not about the password.',
  }),
  'SYS/PERM': Object.freeze({
    title: 'Problem on the server',
    text: 'The server hit a problem of its own that will not pass by itself (SYS/PERM): ask its administrator. It is not about the password.',
  }),
  AUTH: Object.freeze({
    title: 'Wrong user name or password',
    text: 'The server refused the credentials (AUTH): the password is wrong, the user does not exist, or the account is locked.',
  }),
});

/** The explanation of `respCode` (any case), or null for codes not listed. */
export function respCodeHint(respCode) {
  return (typeof respCode === 'string' && RESP_CODES[respCode.toUpperCase()]) || null;
}
