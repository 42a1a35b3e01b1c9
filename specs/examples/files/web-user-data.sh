#!/bin/sh
# Runs once at boot; the image already holds the application. Nothing here changes a server
# after launch: a new version is a new image and a new release.
systemctl start web.service
