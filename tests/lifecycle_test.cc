#include "sandbox_fixture.h"
