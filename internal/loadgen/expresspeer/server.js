// The Node peer of cmd/webhookbench: what a Twilio webhook costs on Twilio's
// own Node stack. Express parses the form and twilio.webhook() checks
// X-Twilio-Signature against TWILIO_AUTH_TOKEN over the URL Express sees
// (http://<Host><originalUrl>); a valid callback is answered 204 and nothing
// is stored. It listens on 127.0.0.1:$PORT (0: any free port) and prints
// "listening <port>" once it does.
'use strict';
const express = require('express');
const twilio = require('twilio');

const app = express();
app.use(express.urlencoded({ extended: false }));
app.post('/twilio/video/status', twilio.webhook(), (req, res) => {
  res.status(204).end();
});

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
