// version: the release this tree builds (debian/changelog and the ChangeLog say the same).
#pragma once

#define ANYRTPPROXY_VERSION "0.1.0"
